package usage

import "github.com/baton-run/baton/shared/store"

// Prices are AWS us-east-1 on-demand list prices in US dollars, without free tiers, written
// down on 2026-11-25 from the services' public pricing pages as quoted in published material
// (no live page could be fetched from the build machine: check aws.amazon.com/pricing before
// relying on them): Lambda arm64 $0.20 per 1M requests and $0.0000133334 per GB-second; API
// Gateway WebSocket $1.00 per 1M messages (32 KB units) and $0.25 per 1M connection-minutes;
// DynamoDB on-demand $0.625 per 1M write request units and $0.125 per 1M read request units;
// S3 Standard $0.005 per 1,000 PUT/LIST and $0.0004 per 1,000 GET/HEAD requests.
type Prices struct {
	LambdaRequest, LambdaGBSecond               float64
	WebSocketMessage, WebSocketConnectionMinute float64
	DynamoWrite, DynamoRead                     float64
	S3Put, S3Get                                float64
	// LambdaMemoryGB and LambdaSecondsPerInvocation turn invocations into GB-seconds.
	LambdaMemoryGB, LambdaSecondsPerInvocation float64
}

// USEast1 are the prices above, with the functions' memory (0.25 GB) and a typical warm
// invocation time (50 ms) for the compute part.
var USEast1 = Prices{
	LambdaRequest: 0.20 / 1e6, LambdaGBSecond: 0.0000133334,
	WebSocketMessage: 1.00 / 1e6, WebSocketConnectionMinute: 0.25 / 1e6,
	DynamoWrite: 0.625 / 1e6, DynamoRead: 0.125 / 1e6,
	S3Put: 0.005 / 1000, S3Get: 0.0004 / 1000,
	LambdaMemoryGB: 0.25, LambdaSecondsPerInvocation: 0.05,
}

// Cost is the dollar cost of u at prices p.
func Cost(u store.Usage, p Prices) float64 {
	return float64(u.Invocations)*(p.LambdaRequest+p.LambdaGBSecond*p.LambdaMemoryGB*p.LambdaSecondsPerInvocation) +
		float64(u.MessageUnits)*p.WebSocketMessage +
		u.WriteUnits*p.DynamoWrite + u.ReadUnits*p.DynamoRead +
		float64(u.S3Writes)*p.S3Put + float64(u.S3Reads)*p.S3Get
}
