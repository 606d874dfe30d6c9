#!/usr/bin/env python3
"""forgelike::python_greet: a Forge-style Python task using python_task_helper's TaskHelper
(installed under _installdir through the metadata "files"), as the Forge's Python tasks do."""

import os
import platform
import sys

sys.path.append(os.path.join(os.path.dirname(__file__), "..", "..", "python_task_helper", "files"))
from task_helper import TaskError, TaskHelper  # noqa: E402 pylint: disable=wrong-import-position


class PythonGreet(TaskHelper):
    def task(self, args):
        if args.get("fail_with"):
            raise TaskError("asked to fail: " + args["fail_with"], "forgelike/asked-to-fail", {"reason": args["fail_with"]})
        return {"greeting": "hello " + args.get("name", "world"), "python": platform.python_version(),
                "task": args.get("_task")}


if __name__ == "__main__":
    PythonGreet().run()
