"""bench/converge_bench.py and bench/fleet_bench.py: the reports' tables (from results shaped like a run's), Mitogen's
comparison and the rollout's ratio to a trivial playbook included, and the inventory Fleet.inventory writes."""
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
import fleet_bench  # noqa: E402  (converge_bench's helpers, on the path above)

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
    assert default["voice_assistants"]["hosts"] == {"bench-pi-amd64": {"wyoming_asr_port": 10314}}
    # Mitogen's runs: its strategy takes over the transport `docker`, not the collection's full name.
    mitogen = json.loads(fleet.inventory(["bench-pi-amd64"], connection="docker").read_text(encoding="utf-8"))
    assert mitogen["voice_assistants"]["vars"]["ansible_connection"] == "docker"
    assert {k: v for k, v in mitogen["voice_assistants"]["vars"].items() if k != "ansible_connection"} == \
        {k: v for k, v in default["voice_assistants"]["vars"].items() if k != "ansible_connection"}


def test_each_pi_of_a_fleet_has_its_own_wyoming_port_on_loopback(tmp_path: Path) -> None:
    # The Pis share the host's network: one port each, or every Pi after the first fails its Wyoming gate.
    fleet = converge_bench.Fleet(tmp_path)
    names = [fleet_bench.host_name(i) for i in range(1, 26)]
    inventory = json.loads(fleet.inventory(names).read_text(encoding="utf-8"))["voice_assistants"]
    ports = [inventory["hosts"][n]["wyoming_asr_port"] for n in names]
    assert ports == list(range(10314, 10339))
    assert inventory["vars"]["wyoming_asr_bind_address"] == "127.0.0.1"
    assert inventory["vars"]["voice_appliance_wyoming_zeroconf"] is False


def _playbook_run(hosts: int, seconds: float, changed: int = 0) -> Dict[str, Any]:
    recap = {fleet_bench.host_name(i): {"ok": 10, "changed": changed, "unreachable": 0, "failed": 0, "skipped": 2,
                                        "rescued": 0, "ignored": 0} for i in range(1, hosts + 1)}
    return {"seconds": seconds, "recap": recap, "batches": 4, "load_mean": 2.0, "load_max": 3.0}


def test_the_fleet_report_sets_each_rollout_against_a_trivial_run_on_the_same_pis(tmp_path: Path) -> None:
    single = [dict(_playbook_run(1, 60.0, 21), label="site.yml, cold (fresh Pi)")]
    cold = dict(_playbook_run(25, 900.0, 21), forks=25)
    rollouts = [dict(_playbook_run(n, s), forks=25, trivial=_playbook_run(n, t))
                for n, s, t in ((1, 20.0, 4.0), (10, 90.0, 15.0), (25, 200.0, 30.0))]
    out = tmp_path / "fleet.md"
    fleet_bench.write_report(out, dict(INFO, aborted=""), single, cold, rollouts, [])
    text = out.read_text(encoding="utf-8")
    assert "| 1 | 25 | 4 | 20 s (0:20) | 20.0 s | 4 s (0:04) | 5.0x | 0 | 2.0 |" in text
    assert "| 25 | 25 | 4 | 200 s (3:20) | 8.0 s | 30 s (0:30) | 6.7x | 0 | 2.0 |" in text
    assert "site.yml on 25 fresh Pis with forks 25: 900 s (15:00)" in text
    assert "at its own port (10314 + its number)" in text
