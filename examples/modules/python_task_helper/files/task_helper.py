"""A small TaskHelper in the shape of the Forge's puppetlabs-python_task_helper
(files/task_helper.py), written for Baton's tests: a task subclasses TaskHelper, defines
task(self, args) returning a dict, and calls run(). Parameters come as JSON on stdin; the
dict is printed as JSON. A TaskError becomes {"_error": {kind, msg, details}} and exit 1; any
other exception the same with kind "python.task.helper/exception"."""

import json
import sys
import traceback


class TaskError(Exception):
    def __init__(self, msg, kind, details=None):
        super().__init__(msg)
        self.kind = kind
        self.details = details or {}

    def to_dict(self):
        return {"kind": self.kind, "msg": str(self), "details": self.details}


class TaskHelper:
    def task(self, args):
        raise TaskError("TaskHelper.task must be implemented by the task", "tasks/not-implemented")

    def run(self):
        try:
            raw = sys.stdin.read()
            args = json.loads(raw) if raw.strip() else {}
            result = self.task(args)
            if isinstance(result, dict):
                print(json.dumps(result))
            else:
                print(json.dumps({"_output": str(result)}))
        except TaskError as err:
            print(json.dumps({"_error": err.to_dict()}))
            sys.exit(1)
        except Exception as err:  # pylint: disable=broad-except
            print(json.dumps({"_error": {
                "kind": "python.task.helper/exception",
                "msg": str(err),
                "details": {"class": type(err).__name__, "trace": traceback.format_exc().splitlines()[-3:]},
            }}))
            sys.exit(1)
