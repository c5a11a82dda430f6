"""bench/converge_bench.py: the report's tables, Mitogen's comparison included (from results shaped like a run's),
and the connection plugin that Fleet.inventory writes for its runs."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Dict

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
_spec = importlib.util.spec_from_file_location("converge_bench", str(REPO / "bench" / "converge_bench.py"))
assert _spec is not None and _spec.loader is not None
converge_bench: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(converge_bench)

INFO = {"machine": "Linux x86_64, 2 CPUs (test)", "date": "2026-11-26", "python": "3.11", "ansible": "2.19.14",
        "commit": "abc1234", "dirty": "", "load_mean": 1.0, "load_max": 2.0, "others": 0, "args": "--mitogen",
        "total": "1 s (0:01)"}


def _run(seconds: float, pi_tasks: int, changed: int = 0) -> Dict[str, Any]:
    entries = [{"host": "bench-pi-amd64", "task": "rhasspy_asr : Task {}".format(i), "action": "ansible.builtin.stat",
                "where": "pi", "status": "ok", "seconds": 0.5, "changed": i < changed} for i in range(pi_tasks)]
    entries.append({"host": "bench-pi-amd64", "task": "Set a fact", "action": "ansible.builtin.set_fact",
                    "where": "controller", "status": "ok", "seconds": 0.01, "changed": False})
    return {"seconds": seconds, "entries": entries, "summary": converge_bench.summarise(entries)}


def test_the_report_compares_each_run_with_and_without_mitogen(tmp_path: Path) -> None:
    results = {"amd64": {"cold": _run(80, 300, 48), "warm": _run(40, 50), "trivial": _run(4, 3),
                         "mitogen-cold": _run(60, 300, 48), "mitogen-warm": _run(20, 50), "mitogen-trivial": _run(2, 3)}}
    out = tmp_path / "converge.md"
    converge_bench.write_report(out, INFO, results)
    text = out.read_text(encoding="utf-8")
    assert "| amd64 | site.yml, warm (no-op) | 40 s (0:40) | 50 % | 51 | 51 | 50 | 50 | 0 |" in text
    assert "| amd64 | site.yml, warm (no-op), Mitogen | 20 s (0:20) | 33 % | 51 | 51 | 50 | 50 | 0 |" in text
    assert "| amd64 | 80 s (1:20) → 60 s (1:00) (75 %) | 40 s (0:40) → 20 s (0:20) (50 %) | 4 s (0:04) → 2 s (0:02) (50 %) |" in text


def test_without_mitogen_there_is_no_comparison(tmp_path: Path) -> None:
    results = {"armhf": {"cold": _run(300, 300, 48), "warm": _run(140, 50), "trivial": _run(10, 3)}}
    out = tmp_path / "converge.md"
    converge_bench.write_report(out, INFO, results)
    text = out.read_text(encoding="utf-8")
    assert "| armhf | site.yml, cold | 300 s (5:00) | 100 % |" in text and "Mitogen" not in text


def test_the_inventory_names_the_connection_it_is_given(tmp_path: Path) -> None:
    fleet = converge_bench.Fleet(tmp_path)
    default = json.loads(fleet.inventory(["bench-pi-amd64"]).read_text(encoding="utf-8"))
    assert default["voice_assistants"]["vars"]["ansible_connection"] == "community.docker.docker"
    assert default["voice_assistants"]["hosts"] == {"bench-pi-amd64": {}}
    # Mitogen's runs: its strategy takes over the transport `docker`, not the collection's full name.
    mitogen = json.loads(fleet.inventory(["bench-pi-amd64"], connection="docker").read_text(encoding="utf-8"))
    assert mitogen["voice_assistants"]["vars"]["ansible_connection"] == "docker"
    assert {k: v for k, v in mitogen["voice_assistants"]["vars"].items() if k != "ansible_connection"} == \
        {k: v for k, v in default["voice_assistants"]["vars"].items() if k != "ansible_connection"}
