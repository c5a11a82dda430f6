"""Bench helper: one JSON line per task execution (host, task, action, where it ran, status, seconds).

Enabled by bench/converge_bench.py (ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=task_log, TASK_LOG_FILE=path). "Where it ran": ``pi`` when the task ran a
module on the host itself, ``controller`` when it ran only on the controller -- an action that never
reaches the host (set_fact, assert, include_*, meta, ...) or a task delegated to localhost.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_log
type: aggregate
short_description: One JSON line per task execution (bench/converge_bench.py)
description: Writes host, task, action, where it ran, status and duration of every task execution to TASK_LOG_FILE.
requirements: [TASK_LOG_FILE set in the environment]
"""

# Actions that run on the controller only: they never open a connection to the host.
CONTROLLER_ACTIONS = {
    "add_host", "assert", "debug", "fail", "group_by", "import_playbook", "import_role", "import_tasks",
    "include_role", "include_tasks", "include_vars", "meta", "pause", "set_fact", "set_stats",
    "validate_argument_spec",
}


def _short(action: str) -> str:
    return action.rsplit(".", 1)[-1]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_log"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get("TASK_LOG_FILE")
        self._out = open(path, "a", encoding="utf-8") if path else None
        self._started: Dict[str, float] = {}
        self._play = ""

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name()

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._started["%s|%s" % (host.get_name(), task._uuid)] = time.monotonic()

    def _log(self, result: Any, status: str) -> None:
        if self._out is None:
            return
        task, host = result._task, result._host.get_name()
        started: Optional[float] = self._started.pop("%s|%s" % (host, task._uuid), None)
        action = _short(task.action)
        delegated = task.delegate_to is not None and str(task.delegate_to) in ("localhost", "127.0.0.1")
        where = "controller" if action in CONTROLLER_ACTIONS or delegated else "pi"
        self._out.write(json.dumps({
            "host": host, "play": self._play, "task": task.get_name(), "action": action, "where": where, "status": status,
            "changed": bool(result._result.get("changed")), "items": len(result._result.get("results") or []) or 1, "seconds": round(time.monotonic() - started, 3) if started else None,
        }) + "\n")
        self._out.flush()

    def v2_runner_on_ok(self, result: Any) -> None:
        self._log(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._log(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._log(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._log(result, "unreachable")
