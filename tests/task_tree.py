"""The tasks of a task list as Ansible runs them: every task, and the tasks inside its block, rescue and always
sections, in file order. Used by the tests that hold a rule over every task of the roles and playbooks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import yaml

ROLE_ACTIONS = ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role")


def unfold(tasks: Optional[List[Dict[str, Any]]]) -> Iterator[Dict[str, Any]]:
    """Every task of the list, each followed by the tasks of its block, rescue and always sections."""
    for task in tasks or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from unfold(task.get(section))


def task_file(path: Path) -> List[Dict[str, Any]]:
    """Every task of a task file, blocks unfolded."""
    return list(unfold(yaml.safe_load(path.read_text())))


def role_includes(tasks: Optional[List[Dict[str, Any]]]) -> Iterator[Dict[str, Any]]:
    """The arguments of every include_role/import_role of a task list, blocks unfolded."""
    for task in unfold(tasks):
        for action in ROLE_ACTIONS:
            if action in task:
                yield task[action]
