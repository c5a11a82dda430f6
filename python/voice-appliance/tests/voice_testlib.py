"""Shared test helpers of python/voice-appliance (a unique module name: the repository's test
suites may run in one pytest session)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PACKAGE_ROOT = HERE.parent
for _path in (str(DATA), str(HERE), str(PACKAGE_ROOT)):  # make_corpora, kenlm_build, package
    if _path not in sys.path:
        sys.path.insert(0, _path)


def reference_cases() -> List[Dict[str, Any]]:
    return json.loads((DATA / "cases.json").read_text(encoding="utf-8"))["cases"]
