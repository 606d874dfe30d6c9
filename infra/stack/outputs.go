package stack

// Names of the stack outputs. Scripts (localstack/smoke.sh) and operators read them from the
// CDK CLI's --outputs-file, so they are part of the deployment's interface: change them only
// together with everything that reads them.
const (
	// OutputHttpApiURL is the HTTP API's base URL, e.g. https://{id}.execute-api.{region}.amazonaws.com/
	// (`baton --server`).
	OutputHttpApiURL = "HttpApiUrl"
	// OutputWebSocketURL is the agents' URL, wss://{id}.execute-api.{region}.amazonaws.com/{stage}
	// (`baton-agent --server`).
	OutputWebSocketURL = "WebSocketUrl"
	// OutputWebSocketManagementURL is the @connections endpoint the functions post to
	// (BATON_WS_ENDPOINT).
	OutputWebSocketManagementURL = "WebSocketManagementUrl"
	// OutputTableName is the DynamoDB table (`baton token create --table`).
	OutputTableName = "TableName"
	// OutputBucketName is the S3 bucket (`baton task publish --bucket`).
	OutputBucketName = "BucketName"
	// OutputDispatchDeadLetterQueueURL is the dispatch queue's dead-letter queue: messages
	// there failed DispatchMaxReceives times (its depth is alarmed).
	OutputDispatchDeadLetterQueueURL = "DispatchDeadLetterQueueUrl"
)

// Outputs of a stack with custom domains (CustomDomains), besides Outputs: the names the
// domains' DNS records point to.
const (
	OutputAgentsDomainTarget = "AgentsDomainTarget"
	OutputAPIDomainTarget    = "ApiDomainTarget"
)

// Outputs lists every output the stack defines, in a stable order.
func Outputs() []string {
	return []string{OutputHttpApiURL, OutputWebSocketURL, OutputWebSocketManagementURL, OutputTableName, OutputBucketName, OutputDispatchDeadLetterQueueURL}
}
