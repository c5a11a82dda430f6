#!/usr/bin/env python3
"""Benchmark: what a converge of one Pi costs, cold and warm, and where the warm run's time goes.

For each architecture (default amd64 and armhf: Debian bookworm containers with systemd as PID 1, the
armhf one under qemu-user, named bench-pi-ARCH), in one run on this machine:

1. site.yml on a fresh Pi (cold: nothing installed on the Pi; the controller's artifact cache is warmed
   first by playbooks/stage.yml, untimed);
2. site.yml again on the converged Pi (warm: a no-op run, changed=0 expected);
3. a trivial playbook of 4 tasks on the same Pi (ping, stat, command, set_fact): the fixed cost of a
   run, to compare the warm run with;
4. with --mitogen, the same three runs once more with Mitogen for Ansible as the accelerator (its
   strategy mitogen_linear and its docker transport, on a second fresh Pi): mitogen is fetched by package
   name with pip (the user's index applies), pinned by version and sha256, and used only by this bench.

Every task execution is logged by bench/callback_plugins/task_log.py: its host, role and task, action,
whether it reached the Pi (a module run on the Pi) or stayed on the controller (set_fact, assert,
include_*, meta, delegated to localhost), status and seconds. The report gives wall times and their
same-run ratios, the number of task executions and of those that reached the Pi (loop items counted
one by one), and the warm run's Pi-side executions by role and its costliest tasks.

The Pis use the external-broker path and the fixture model from harness/artifact_server.py on free
loopback ports, as bench/fleet_bench.py (whose Fleet and Runner this reuses) does; everything runs under
nice 19 and is removed at the end, also on failure or Ctrl-C.

    nice -n 19 .venv/bin/python bench/converge_bench.py [--arches amd64,armhf] [--mitogen] [--output bench/converge.md]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import zipfile
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet_bench import REPO, TRIVIAL, Fleet, Runner, fmt_time, header, run, run_info, why_aborted  # noqa: E402  (the bench's own helpers)

IMAGES = {"amd64": "pi-voice/debian:bookworm-amd64", "armhf": "pi-voice/debian:bookworm-armhf",
          "arm64": "pi-voice/debian:trixie-arm64"}
# Mitogen for Ansible (>= 0.3.25 supports ansible-core 2.19): the version and the wheel's sha256 this bench trusts.
MITOGEN = "mitogen==0.3.54 --hash=sha256:ed7f209225069cbbe0c2f25ec5e4cd88e43bcb7ae0d55c61850083c96b81591d"
RUNS = (("cold", "site.yml, cold"), ("warm", "site.yml, warm (no-op)"), ("trivial", "trivial, 4 tasks"))


def read_log(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise(entries: List[Dict[str, Any]]) -> Dict[str, Any]:
    ran = [e for e in entries if e["status"] != "skipped"]
    on_pi = [e for e in ran if e["where"] == "pi"]
    return {"executions": len(entries), "ran": len(ran), "skipped": len(entries) - len(ran),
            "pi": len(on_pi), "pi_items": sum(int(e.get("items", 1)) for e in on_pi),
            "pi_seconds": sum(float(e["seconds"] or 0) for e in on_pi),
            "controller_seconds": sum(float(e["seconds"] or 0) for e in ran if e["where"] != "pi"),
            "changed": sum(1 for e in ran if e["changed"])}


def role_of(task: str) -> str:
    return task.split(" : ", 1)[0] if " : " in task else "(play)"


def fetch_mitogen(work: Path) -> Path:
    """Mitogen's strategy plugins, from its wheel fetched by name with pip (the wheel's sum must match MITOGEN)."""
    (work / "mitogen-requirements.txt").write_text(MITOGEN + "\n", encoding="utf-8")
    download = work / "mitogen-wheel"
    fetched = subprocess.run([str(REPO / ".venv" / "bin" / "pip"), "download", "--no-deps", "--only-binary", ":all:",
                              "--require-hashes", "-r", str(work / "mitogen-requirements.txt"), "-d", str(download)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    wheels = sorted(download.glob("mitogen-*.whl"))
    if fetched.returncode != 0 or not wheels:
        raise SystemExit("pip could not fetch {} (is your pip index reachable? pip.conf or PIP_INDEX_URL point pip at "
                         "a mirror):\n{}".format(MITOGEN.split()[0], fetched.stdout[-2000:]))
    with zipfile.ZipFile(str(wheels[0])) as wheel:
        wheel.extractall(str(work / "mitogen"))
    return work / "mitogen" / "ansible_mitogen" / "plugins" / "strategy"


def write_report(path: Path, info: Dict[str, Any], results: Dict[str, Dict[str, Any]]) -> None:
    out = header("Converge benchmark: one Pi, cold vs warm, and where a no-op run goes", "converge_bench.py", info)
    out.append("Method: bench/converge_bench.py's docstring. A task execution is one task on one host (a loop counts "
               "once; \"Pi round trips\" counts its items); \"on the Pi\" means a module ran on the Pi, the rest stayed "
               "on the controller (set_fact, assert, include_*, meta, delegated to localhost). Compare ratios within "
               "this run, not absolute times with other machines.")
    out.append("")
    out.append("## Wall time and task executions")
    out.append("")
    out.append("| Pi | run | wall time | vs cold | task executions | ran | on the Pi | Pi round trips | changed |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arch, res in results.items():
        for prefix, suffix in (("", ""), ("mitogen-", ", Mitogen")):
            if prefix + "cold" not in res:
                continue
            cold = float(res[prefix + "cold"]["seconds"])  # each against the cold run of its own kind
            for key, label in RUNS:
                if prefix + key not in res:
                    continue
                r, s = res[prefix + key], res[prefix + key]["summary"]
                out.append("| {} | {} | {} | {:.0f} % | {} | {} | {} | {} | {} |".format(
                    arch, label + suffix, fmt_time(float(r["seconds"])), 100.0 * float(r["seconds"]) / cold, s["executions"],
                    s["ran"], s["pi"], s["pi_items"], s["changed"]))
    out.append("")
    mitogen = [(arch, res) for arch, res in results.items() if all("mitogen-" + k in res for k, _ in RUNS)]
    if mitogen:
        out.append("With Mitogen (`{}`, strategy `mitogen_linear`, its `docker` transport; the same tasks on a second "
                   "fresh Pi), each run's wall time against the same run without it:".format(MITOGEN.split()[0]))
        out.append("")
        out.append("| Pi | " + " | ".join(label for _, label in RUNS) + " |")
        out.append("| --- |" + " ---: |" * len(RUNS))
        for arch, res in mitogen:
            out.append("| {} | ".format(arch) + " | ".join("{} → {} ({:.0f} %)".format(
                fmt_time(float(res[k]["seconds"])), fmt_time(float(res["mitogen-" + k]["seconds"])),
                100.0 * float(res["mitogen-" + k]["seconds"]) / float(res[k]["seconds"])) for k, _ in RUNS) + " |")
        out.append("")
    for arch, res in results.items():
        if "warm" not in res:
            continue
        entries = [e for e in res["warm"]["entries"] if e["status"] != "skipped" and e["where"] == "pi"]
        by_role: Dict[str, List[float]] = defaultdict(list)
        for e in entries:
            by_role[role_of(e["task"])].append(float(e["seconds"] or 0))
        out.append("## {}: the warm run's executions on the Pi, by role".format(arch))
        out.append("")
        out.append("| role | on the Pi | seconds |")
        out.append("| --- | ---: | ---: |")
        for role, secs in sorted(by_role.items(), key=lambda kv: -sum(kv[1])):
            out.append("| {} | {} | {:.1f} |".format(role, len(secs), sum(secs)))
        out.append("")
        out.append("Costliest tasks of the warm run on the Pi:")
        out.append("")
        out.append("| task | action | seconds |")
        out.append("| --- | --- | ---: |")
        for e in sorted(entries, key=lambda e: -float(e["seconds"] or 0))[:12]:
            out.append("| {} | {} | {:.1f} |".format(e["task"].replace("|", "\\|"), e["action"], float(e["seconds"] or 0)))
        actions = Counter(e["action"] for e in entries)
        out.append("")
        out.append("Actions on the Pi: " + ", ".join("{} {}".format(a, n) for a, n in actions.most_common()) + ".")
        out.append("")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arches", default="amd64,armhf", help="comma-separated, of " + ", ".join(IMAGES))
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "converge.md")
    parser.add_argument("--log-dir", type=Path, default=None, help="where the ansible logs go (default: a new temp dir)")
    parser.add_argument("--mitogen", action="store_true", help="also run cold, warm and trivial with Mitogen (fetched with pip)")
    args = parser.parse_args()
    arches = [a.strip() for a in args.arches.split(",") if a.strip()]
    unknown = [a for a in arches if a not in IMAGES]
    if unknown or not arches:
        raise SystemExit("--arches takes a comma-separated list of {} (got {!r})".format(", ".join(IMAGES), args.arches))
    for arch in arches:
        if run(["docker", "image", "inspect", IMAGES[arch]], check=False).returncode != 0:
            raise SystemExit("no image {}: run PI_VOICE_IMAGES=... bash harness/setup.sh first".format(IMAGES[arch]))
    os.nice(max(0, 19 - os.nice(0)))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="converge-bench-"))
    log_dir = args.log_dir or work / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    (work / "trivial.yml").write_text(TRIVIAL, encoding="utf-8")
    others = len([n for n in run(["docker", "ps", "--format", "{{.Names}}"]).stdout.split() if not n.startswith("bench-pi-")])
    fleet = Fleet(work)
    runner = Runner(fleet, log_dir)
    runner.env.update(ANSIBLE_CALLBACK_PLUGINS=str(REPO / "bench" / "callback_plugins"),
                      ANSIBLE_CALLBACKS_ENABLED="task_log,ansible.posix.profile_tasks")
    strategies = str(fetch_mitogen(work)) if args.mitogen else ""

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("signal {}".format(signum))

    signal.signal(signal.SIGTERM, on_signal)
    results: Dict[str, Dict[str, Any]] = {}
    loads: List[float] = []
    aborted = ""
    try:
        fleet.start_services()
        for arch in arches:
            res: Dict[str, Any] = {}
            results[arch] = res
            for prefix in ("", "mitogen-") if strategies else ("",):
                name = "bench-pi-" + arch
                fleet.create([name], image=IMAGES[arch])
                # Mitogen redirects the transport `docker` (community.docker.docker's short name) to its own.
                inv = fleet.inventory([name], connection="docker" if prefix else "community.docker.docker")
                if prefix:
                    runner.env.update(ANSIBLE_STRATEGY_PLUGINS=strategies, ANSIBLE_STRATEGY="mitogen_linear")
                runner.env["TASK_LOG_FILE"] = os.devnull
                runner.playbook("{}: warm-up, stage.yml (controller cache)".format(arch), "playbooks/stage.yml", inv, forks=5)
                runner.clear_facts()
                for key, playbook in (("cold", "site.yml"), ("warm", "site.yml"), ("trivial", str(work / "trivial.yml"))):
                    task_log = log_dir / "{}-{}{}.jsonl".format(arch, prefix, key)
                    runner.env["TASK_LOG_FILE"] = str(task_log)
                    r = runner.playbook("{}: {}{}".format(arch, prefix, key), playbook, inv, forks=5)
                    r["entries"] = [e for e in read_log(task_log) if e["host"] == name]
                    r["summary"] = summarise(r["entries"])
                    loads.append(float(r["load_max"]))
                    res[prefix + key] = r
                fleet.remove([name])
                runner.clear_facts()
                for variable in ("ANSIBLE_STRATEGY_PLUGINS", "ANSIBLE_STRATEGY"):
                    runner.env.pop(variable, None)
    except (KeyboardInterrupt, SystemExit) as exc:
        aborted = why_aborted(exc)
    finally:
        fleet.close()
    results = {arch: res for arch, res in results.items() if "cold" in res}
    if not results:
        return 1
    means = [float(r["load_mean"]) for res in results.values() for r in res.values()]
    info = run_info(started, means, loads, others)
    write_report(args.output, info, results)
    (log_dir / "results.json").write_text(json.dumps({"info": info, "results": results}, indent=1))
    print("[bench] wrote {}; logs in {}{}".format(args.output, log_dir, "; ABORTED: " + aborted if aborted else ""),
          file=sys.stderr)
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())
