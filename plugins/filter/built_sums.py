"""Filter built_sum_pins: the sums pinned in built-artifacts.sha256 (logic in scripts/built_sums.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

# plugins/filter/ -> the collection root.
_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "built_sums.py"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("pi_voice_built_sums", str(_SCRIPT))
    if spec is None or spec.loader is None:
        raise AnsibleFilterError("cannot load {}".format(_SCRIPT))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built_sum_pins(text: str, source: str = "built-artifacts.sha256") -> Dict[str, str]:
    module = _module()
    try:
        return dict(module.parse(str(text), source))
    except module.SumsError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"built_sum_pins": built_sum_pins}
