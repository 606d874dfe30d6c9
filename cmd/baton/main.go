// Command baton is Baton's operator binary: `baton serve` runs the whole orchestrator on one
// machine, and the other subcommands are clients of its HTTP API (or of a deployed one).
package main

import (
	"fmt"
	"os"
)

const usage = `baton — run Puppet tasks on fleets of nodes

Usage:
  baton serve [--listen ADDR] [--data DIR] [--modules DIR | --environments DIR]
  baton run (--nodes a,b | --query Q | --node-group G) [--environment E] [--noop | --no-noop]
            [--tags T] [--skip-tags T] [--enforce-environment] [--debug] [--trace] [--evaltrace]
            [--concurrency N] [--timeout DURATION] [--max-errors N|P%] [--no-wait] [--format table|json]
  baton task run MODULE::TASK (--nodes a,b | --query Q | --node-group G) [--params JSON | k=v ...]
                 [--concurrency N] [--timeout DURATION] [--max-errors N|P%] [--noop]
                 [--environment E] [--no-wait] [--format table|json] [--stream]
  baton task list [--environment E]
  baton task publish --bucket B [--environment E] MODULES_DIR   (AWS: upload tasks to S3)
  baton task show MODULE::TASK [--environment E]
  baton job list [--limit N] [--type task|deploy]
  baton job show ID
  baton job events ID [--start N] [--follow]
  baton job output ID NODE [--after SEQ] [--follow]   a node's live task output
  baton job stop ID [--force]
  baton group add NAME (--nodes a,b | --query Q) [--description D]
  baton group list | show NAME | rm NAME
  baton login [--lifetime 8h]                  save a fresh token of your own for later commands
  baton token issue --out FILE [--login L] [--lifetime D] [--label X]
  baton token list | revoke ID
  baton token create --table T --out FILE [--login L] [--lifetime D]   (AWS: first admin token)
  baton token rotate-admin [--data DIR] [--lifetime D]   (baton serve's machine: new admin token, old one revoked)
  baton role add NAME --permission ACTION[=INSTANCE][@SCOPE] ... | list | rm NAME
  baton user set LOGIN --roles a,b | list
  baton node add NAME --out FILE
  baton node list
  baton node revoke NAME                       its credential stops working; its connection is closed
  baton node show NAME

Client commands take --server URL (env BATON_SERVER, default http://127.0.0.1:8143) and
--token-file FILE (env BATON_TOKEN_FILE; default: the token saved by baton login, else the
admin token of the local baton serve).
Permissions: jobs:view, jobs:stop, puppet:run, tasks:run, nodes:manage, tokens:manage,
tasks:manage; INSTANCE is a task name for tasks:run; SCOPE is *, group:NAME or query:QUERY.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		return 0
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:])
	case "task":
		err = dispatch(args[1:], map[string]func([]string) error{"run": cmdTaskRun, "list": cmdTaskList, "show": cmdTaskShow, "publish": cmdTaskPublish})
	case "job":
		err = dispatch(args[1:], map[string]func([]string) error{"list": cmdJobList, "show": cmdJobShow, "events": cmdJobEvents, "stop": cmdJobStop, "output": cmdJobOutput})
	case "group":
		err = dispatch(args[1:], map[string]func([]string) error{"add": cmdGroupAdd, "list": cmdGroupList, "show": cmdGroupShow, "rm": cmdGroupRm})
	case "token":
		err = dispatch(args[1:], map[string]func([]string) error{"create": cmdTokenCreate, "rotate-admin": cmdTokenRotateAdmin, "issue": cmdTokenIssue, "list": cmdTokenList, "revoke": cmdTokenRevoke})
	case "login":
		err = cmdLogin(args[1:])
	case "role":
		err = dispatch(args[1:], map[string]func([]string) error{"add": cmdRoleAdd, "list": cmdRoleList, "rm": cmdRoleRm})
	case "user":
		err = dispatch(args[1:], map[string]func([]string) error{"set": cmdUserSet, "list": cmdUserList})
	case "run":
		err = cmdRun(args[1:])
	case "node":
		err = dispatch(args[1:], map[string]func([]string) error{"add": cmdNodeAdd, "list": cmdNodeList, "show": cmdNodeShow, "revoke": cmdNodeRevoke})
	default:
		err = usageError("unknown command %q", args[0])
	}
	if err == nil {
		return 0
	}
	var ex exitError
	if asExit(err, &ex) {
		return ex.code
	}
	fmt.Fprintln(os.Stderr, "baton:", err)
	if _, ok := err.(usageErr); ok {
		return 2
	}
	return 1
}

func dispatch(args []string, cmds map[string]func([]string) error) error {
	if len(args) == 0 {
		return usageError("missing subcommand")
	}
	f, ok := cmds[args[0]]
	if !ok {
		return usageError("unknown subcommand %q", args[0])
	}
	return f(args[1:])
}

type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg + " (see baton --help)" }

func usageError(format string, a ...any) error { return usageErr{fmt.Sprintf(format, a...)} }

// exitError ends the command with a code and no further message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func asExit(err error, target *exitError) bool {
	e, ok := err.(exitError)
	if ok {
		*target = e
	}
	return ok
}
