#!/usr/bin/env python3
"""Benchmark: converging and rolling out a fleet of emulated Pis from this controller.

Measures, on this machine, with Debian bookworm amd64 containers (systemd as PID 1, the platform
settings of molecule/fleet/molecule.yml) named bench-pi-NN:

1. one host: site.yml on a fresh container (cold: nothing installed on the Pi; the controller's
   artifact cache is warmed first, untimed), site.yml again (warm: idempotent), and
   playbooks/verify.yml alone (twice) -- wall time, tasks run and changed;
2. a fleet: site.yml on 25 fresh containers at once (cold, forks 25), then playbooks/rollout.yml
   (default ramp [1, "10%", "25%", "100%"]) on the already converged Pis, limited to the first
   1, 10 and 25 of them, at each --forks value (a warm rollout: an unchanged configuration), each
   followed by a trivial playbook of 4 tasks on the same Pis (the fixed cost of a run: the ratio's yardstick).

The Pis use the external-broker path (one Mosquitto on a free loopback port, started here) and the
fixture model served by harness/artifact_server.py on a free loopback port, as the molecule
scenarios do. Everything runs under nice 19, including the containers (their shim and PID 1 are
reniced, so every process Ansible starts in them inherits it). Containers, broker and server are
removed at the end, also on failure or Ctrl-C.

    nice -n 19 .venv/bin/python bench/fleet_bench.py [--hosts 1,10,25] [--forks 25,5]
        [--budget-minutes 40] [--output bench/fleet.md]

A rollout measurement whose estimated time would exceed the budget is dropped (and listed as
dropped in the results). Logs of every run stay in --log-dir (printed at the end).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "files" / "fixture"
IMAGE = "pi-voice/debian:bookworm-amd64"
PREFIX = "bench-pi-"
RAMP = '[1, "10%", "25%", "100%"]'
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)")
# Each Pi's Wyoming server listens on loopback at this port plus its number (the Pis share the host network).
WYOMING_PORT = 10313
TRIVIAL = """---
- name: A trivial playbook (the fixed cost of a run).
  hosts: voice_assistants
  gather_facts: false
  tasks:
    - name: Reach the Pi.
      ansible.builtin.ping:
    - name: Look at a file.
      ansible.builtin.stat:
        path: /etc/os-release
    - name: Run a command.
      ansible.builtin.command: "true"
      changed_when: false
    - name: Set a fact.
      ansible.builtin.set_fact:
        bench_trivial: true
"""


def host_name(i: int) -> str:
    return "{}{:02d}".format(PREFIX, i)


def pi_number(name: str) -> int:
    """A Pi's number from its name (bench-pi-07: 7); a name without one (bench-pi-amd64) is Pi 1."""
    digits = name[len(PREFIX):]
    return int(digits) if digits.isdigit() else 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("{} did not open 127.0.0.1:{} within {:.0f} s".format(what, port, timeout))


def run(argv: Sequence[str], check: bool = True) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


class LoadSampler:
    """Samples the 1-minute load average every few seconds while a measurement runs."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.samples = []  # type: List[float]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.interval)

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Fleet:
    """The bench's containers, broker and artifact server; everything it started is removed by close()."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.containers = []  # type: List[str]
        self.procs = []  # type: List[subprocess.Popen[bytes]]
        self.broker_port = 0
        self.origin_port = 0

    def start_services(self) -> None:
        origin = self.work / "origin"
        model_dir = origin / "fixture_model" / "1"
        model_dir.mkdir(parents=True)
        for name in ("output_graph.tflite", "output_graph.pb", "alphabet.txt"):
            shutil.copy(str(FIXTURE / name), str(model_dir / name))
        self.origin_port = free_port()
        self.procs.append(subprocess.Popen(
            ["nice", "-n", "19", sys.executable, str(REPO / "harness" / "artifact_server.py"), "--root", str(origin),
             "--port", str(self.origin_port), "--log", str(origin / "requests.jsonl")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(self.origin_port, "the artifact server")
        self.broker_port = free_port()
        conf = self.work / "mosquitto.conf"
        conf.write_text("listener {} 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n".format(
            self.broker_port), encoding="utf-8")
        self.procs.append(subprocess.Popen(["nice", "-n", "19", "/usr/sbin/mosquitto", "-c", str(conf)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(self.broker_port, "Mosquitto")

    def create(self, names: Sequence[str], image: str = IMAGE) -> None:
        for name in names:
            run(["docker", "rm", "-f", name], check=False)
            self.containers.append(name)
            run(["docker", "run", "-d", "--name", name, "--hostname", name, "--add-host", name + ":127.0.1.1",
                 "--network", "host", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
                 "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                 "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--cgroupns", "host",
                 "--stop-signal", "SIGRTMIN+3", "-e", "container=docker", image, "/lib/systemd/systemd"])
            self._renice(name)
        for name in names:
            self._wait_systemd(name)

    @staticmethod
    def _renice(name: str) -> None:
        """Nice 19 for the container's PID 1 and its shim (every thread), so all later processes in it inherit it."""
        pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip()
        shim = Path("/proc", pid, "stat").read_text().rsplit(")", 1)[1].split()[1]
        for proc in (pid, shim):
            for task in Path("/proc", proc, "task").iterdir():
                try:
                    os.setpriority(os.PRIO_PROCESS, int(task.name), 19)
                except OSError:
                    pass  # a thread that ended meanwhile

    @staticmethod
    def _wait_systemd(name: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = run(["docker", "exec", name, "systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(1)
        raise SystemExit("{}: systemd did not finish booting within {:.0f} s (state {!r})".format(name, timeout, state))

    def remove(self, names: Sequence[str]) -> None:
        if names:
            run(["docker", "rm", "-f"] + list(names), check=False)
        self.containers = [c for c in self.containers if c not in names]

    def close(self) -> None:
        self.remove(list(self.containers))
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def inventory(self, names: Sequence[str], connection: str = "community.docker.docker") -> Path:
        """Writes the inventory of these Pis (reached with this connection plugin) and returns its path."""
        path = self.work / "inventory.json"
        base = "http://127.0.0.1:{}/fixture_model/1/".format(self.origin_port)
        group_vars = {
            "ansible_connection": connection,
            "deepspeech_model_name": "fixture_model",
            "deepspeech_model_version": "1",
            "voice_verify_max_rtf": 50.0,
            "voice_appliance_mqtt_broker": "external",
            "voice_appliance_mqtt_host": "127.0.0.1",
            "voice_appliance_mqtt_port": self.broker_port,
            "artifact_stage_catalog_overrides": {"fixture_model": {"1": {
                "tflite": {"url": base + "output_graph.tflite"},
                "pb": {"url": base + "output_graph.pb"},
                "alphabet": {"url": base + "alphabet.txt"}}}},
        }
        # The Pis share the host's network: each Wyoming server on loopback and its own port, no zeroconf
        # announcements (as molecule/fleet does).
        group_vars.update({"wyoming_asr_bind_address": "127.0.0.1", "voice_appliance_wyoming_zeroconf": False})
        hosts = {n: {"wyoming_asr_port": WYOMING_PORT + pi_number(n)} for n in names}
        data = {"voice_assistants": {"hosts": hosts, "vars": group_vars}}
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
        # A .json inventory is read by the yaml plugin (JSON is YAML).
        return path


class Runner:
    """Runs ansible-playbook (nice 19) with the bench's inventory and its own, initially empty, fact cache."""

    def __init__(self, fleet: Fleet, log_dir: Path) -> None:
        self.fleet = fleet
        self.log_dir = log_dir
        self.count = 0
        self.fact_cache = fleet.work / "facts"
        venv_bin = REPO / ".venv" / "bin"
        self.ansible_playbook = str(venv_bin / "ansible-playbook")
        self.env = dict(os.environ, PATH=str(venv_bin) + os.pathsep + os.environ.get("PATH", ""),
                        ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
                        ANSIBLE_PIPELINING="1",
                        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.fact_cache), ANSIBLE_FORCE_COLOR="0",
                        ANSIBLE_NOCOLOR="1")

    def clear_facts(self) -> None:
        shutil.rmtree(str(self.fact_cache), ignore_errors=True)

    def playbook(self, label: str, playbook: str, inventory: Path, forks: int,
                 limit: Optional[str] = None, extra: Sequence[str] = ()) -> Dict[str, object]:
        self.count += 1
        log = self.log_dir / "{:02d}-{}.log".format(self.count, re.sub(r"[^A-Za-z0-9_.-]+", "_", label))
        argv = ["nice", "-n", "19", self.ansible_playbook, playbook, "-i", str(inventory), "--forks", str(forks)]
        if limit:
            argv += ["--limit", limit]
        argv += list(extra)
        print("[bench] {} ...".format(label), file=sys.stderr, flush=True)
        with LoadSampler() as load, log.open("w", encoding="utf-8") as out:
            start = time.monotonic()
            rc = subprocess.call(argv, cwd=str(REPO), env=self.env, stdout=out, stderr=subprocess.STDOUT)
            seconds = time.monotonic() - start
        text = log.read_text(encoding="utf-8", errors="replace")
        if rc != 0:
            tail = "\n".join(text.splitlines()[-40:])
            raise SystemExit("{} failed (exit {}); log {}:\n{}".format(label, rc, log, tail))
        recap = {}  # type: Dict[str, Dict[str, int]]
        for line in text.splitlines():
            m = RECAP.match(line.strip())
            if m:
                counts = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                total = recap.setdefault(m.group("host"), {k: 0 for k in counts})
                for k, v in counts.items():
                    total[k] += v
        batches = sum(1 for line in text.splitlines() if line.startswith("PLAY [Roll the voice appliance out"))
        result = {"label": label, "seconds": seconds, "recap": recap, "batches": batches, "log": str(log),
                  "load_mean": sum(load.samples) / max(1, len(load.samples)), "load_max": max(load.samples or [0.0])}
        print("[bench] {}: {:.1f} s".format(label, seconds), file=sys.stderr, flush=True)
        return result


def tasks(result: Dict[str, object], host: str) -> Dict[str, int]:
    recap = result["recap"]  # type: ignore[assignment]
    counts = recap[host]  # type: ignore[index]
    return {"run": counts["ok"] + counts["failed"] + counts["skipped"], "changed": counts["changed"],
            "ok": counts["ok"], "skipped": counts["skipped"]}


def pis(result: Dict[str, object]) -> List[str]:
    return sorted(h for h in result["recap"] if h.startswith(PREFIX))  # type: ignore[union-attr]


def fmt_time(seconds: float) -> str:
    whole = int(round(seconds))  # one rounding for both forms (35.9 s is "36 s (0:36)")
    return "{} s ({}:{:02d})".format(whole, whole // 60, whole % 60)


def why_aborted(exc: BaseException) -> str:
    """The first line of why a bench run stopped early (Ctrl-C, SIGTERM or a failed playbook); says so on stderr."""
    print("[bench] {}; cleaning up".format(exc), file=sys.stderr)
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else str(getattr(exc, "code", exc)).splitlines()[0]


def run_info(started: float, load_means: List[float], load_maxes: List[float], others: int) -> Dict[str, object]:
    """What a bench report says about its run: machine, controller, commit, load, command line, duration."""
    head = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "site.yml", "playbooks", "roles", "plugins"]).stdout.strip()
    ansible = run([str(REPO / ".venv" / "bin" / "ansible"), "--version"]).stdout.split("\n")[0]
    return {"machine": "{} {}, {} CPUs ({})".format(platform.system(), platform.machine(), os.cpu_count(), cpu_model()),
            "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
            "ansible": re.sub(r".*\[core ([^\]]+)\].*", r"\1", ansible), "commit": head,
            "dirty": " (with uncommitted changes in playbooks/roles/plugins)" if dirty else "",
            "load_mean": sum(load_means) / max(1, len(load_means)), "load_max": max(load_maxes or [0.0]), "others": others,
            "args": " ".join(sys.argv[1:]), "total": fmt_time(time.monotonic() - started)}


def header(title: str, script: str, info: Dict[str, object]) -> List[str]:
    """A bench report's first lines: the machine, the controller, the load and the command (shared by the benches)."""
    return ["# " + title, "",
            "Machine: {machine}; {date}. Controller: ansible-core {ansible}, Python {python}; commit {commit}{dirty}.".format(**info),
            "Load average (1 min) during the runs: mean {load_mean:.1f}, max {load_max:.1f} (a shared 2-core machine: "
            "{others} other containers were running when the bench started).".format(**info),
            "", "Measured with `nice -n 19 .venv/bin/python bench/{} {}` (total {}).".format(script, info["args"], info["total"]), ""]


def write_report(path: Path, info: Dict[str, object], single: List[Dict[str, object]],
                 cold: Optional[Dict[str, object]], rollouts: List[Dict[str, object]], dropped: List[str]) -> None:
    lines = header("Fleet benchmark: converge and rollout wall time", "fleet_bench.py", info)
    lines.append("Method: each Pi is a Docker container (Debian bookworm amd64, systemd as PID 1, `--network host`, "
                 "molecule/fleet's platform settings), reached with the `community.docker.docker` connection; "
                 "the external-broker path (one Mosquitto on loopback for all Pis) and the fixture model from "
                 "harness/artifact_server.py, the group variables of molecule/default (`voice_verify_max_rtf: 50`), and each "
                 "Pi's Wyoming server on loopback at its own port ({} + its number) without zeroconf, as in molecule/fleet. "
                 "The controller's artifact cache is warm (a stage-only run precedes the first timed run, untimed), "
                 "so \"cold\" means nothing installed on the Pi, not downloads from the internet; apt on the Pi "
                 "does download from the Debian mirror. Facts are cached (`gathering: smart`, the project's "
                 "ansible.cfg) in a fact cache the bench starts empty. Tasks run = ok + failed + skipped from the "
                 "play recap, summed over the plays of the run (staging plays included).".format(WYOMING_PORT + 1))
    lines.append("")
    lines.append("## One Pi: cold converge vs warm re-run")
    lines.append("")
    lines.append("| run | wall time | tasks run | changed | skipped | load avg (mean) |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in single:
        t = tasks(r, pis(r)[0])
        lines.append("| {} | {} | {} | {} | {} | {:.1f} |".format(r["label"], fmt_time(float(r["seconds"])),  # type: ignore[arg-type]
                                                              t["run"], t["changed"], t["skipped"], r["load_mean"]))
    lines.append("")
    lines.append("## Fleet: cold converge of {} Pis".format(len(pis(cold)) if cold else 0))
    lines.append("")
    if cold:
        hosts = pis(cold)
        changed = [tasks(cold, h)["changed"] for h in hosts]
        lines.append("site.yml on {} fresh Pis with forks {}: {} (load avg mean {:.1f}, max {:.1f}); "
                     "changed per Pi {}-{}.".format(len(hosts), cold["forks"], fmt_time(float(cold["seconds"])),  # type: ignore[arg-type]
                                                    cold["load_mean"], cold["load_max"], min(changed), max(changed)))
    lines.append("")
    lines.append("## Fleet: warm rollout (playbooks/rollout.yml, ramp {}) on converged Pis".format(RAMP.replace("|", "\\|")))
    lines.append("")
    lines.append("Each rollout is followed by a trivial playbook of 4 tasks (ping, stat, command, set_fact) on the same "
                 "Pis with the same forks: the fixed cost of any run on them, and the yardstick of the ratio.")
    lines.append("")
    lines.append("| Pis | forks | batches | wall time | per Pi | trivial, 4 tasks | rollout / trivial | changed (all Pis) "
                 "| load avg (mean) |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rollouts:
        hosts = pis(r)
        changed = sum(tasks(r, h)["changed"] for h in hosts)
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        base = float(r["trivial"]["seconds"])  # type: ignore[index]
        lines.append("| {} | {} | {} | {} | {:.1f} s | {} | {:.1f}x | {} | {:.1f} |".format(
            len(hosts), r["forks"], r["batches"], fmt_time(seconds), seconds / len(hosts), fmt_time(base), seconds / base,
            changed, r["load_mean"]))
    if info["aborted"]:
        lines.append("")
        lines.append("Incomplete: the bench stopped early ({}); the rows above are what was measured.".format(info["aborted"]))
    if dropped:
        lines.append("")
        lines.append("Dropped to stay within the time budget: " + "; ".join(dropped) + ".")
    lines.append("")
    lines.append("<!-- interpretation -->")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1,10,25", help="fleet sizes of the rollout runs (the largest is converged)")
    parser.add_argument("--forks", default="25,5", help="forks values of the rollout runs, most important first")
    parser.add_argument("--budget-minutes", type=float, default=40.0, help="drop rollout runs that would end later")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "fleet.md")
    parser.add_argument("--log-dir", type=Path, default=None, help="where the ansible logs go (default: a new temp dir)")
    args = parser.parse_args()
    try:
        sizes = sorted({int(s) for s in args.hosts.split(",")})
        forks_values = [int(f) for f in args.forks.split(",")]
    except ValueError:
        raise SystemExit("--hosts and --forks take comma-separated integers, e.g. --hosts 1,10,25 --forks 25,5; "
                         "got {!r} and {!r}".format(args.hosts, args.forks))
    if not sizes or sizes[0] < 1 or sizes[-1] > 99 or not forks_values or min(forks_values) < 1:
        raise SystemExit("--hosts must be 1..99 and --forks >= 1 (got {!r}, {!r})".format(args.hosts, args.forks))
    if not (REPO / ".venv" / "bin" / "ansible-playbook").exists():
        raise SystemExit("no controller venv at {}: create it first (see README.md)".format(REPO / ".venv"))
    if run(["docker", "image", "inspect", IMAGE], check=False).returncode != 0:
        raise SystemExit("no image {}: run harness/build-image.sh bookworm amd64".format(IMAGE))
    os.nice(max(0, 19 - os.nice(0)))

    started = time.monotonic()
    budget = args.budget_minutes * 60.0
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    log_dir = args.log_dir or work / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    others = len([n for n in run(["docker", "ps", "--format", "{{.Names}}"]).stdout.split() if not n.startswith(PREFIX)])
    fleet = Fleet(work)
    runner = Runner(fleet, log_dir)
    trivial = work / "trivial.yml"
    trivial.write_text(TRIVIAL, encoding="utf-8")

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("signal {}".format(signum))

    signal.signal(signal.SIGTERM, on_signal)
    all_loads = []  # type: List[float]
    single = []  # type: List[Dict[str, object]]
    rollouts = []  # type: List[Dict[str, object]]
    dropped = []  # type: List[str]
    cold = None  # type: Optional[Dict[str, object]]
    aborted = ""
    try:
        fleet.start_services()
        # 1. One Pi.
        one = [host_name(1)]
        fleet.create(one)
        inv = fleet.inventory(one)
        runner.playbook("warm-up: stage.yml (controller cache)", "playbooks/stage.yml", inv, forks=5)
        runner.clear_facts()
        for label, playbook in (("site.yml, cold (fresh Pi)", "site.yml"), ("site.yml, warm (re-run)", "site.yml"),
                                ("verify.yml alone, 1st run", "playbooks/verify.yml"),
                                ("verify.yml alone, 2nd run", "playbooks/verify.yml")):
            single.append(runner.playbook(label, playbook, inv, forks=5))
        fleet.remove(one)
        runner.clear_facts()
        # 2. The fleet: converge the largest size once, then rollouts on subsets.
        names = [host_name(i) for i in range(1, sizes[-1] + 1)]
        fleet.create(names)
        inv = fleet.inventory(names)
        cold = runner.playbook("site.yml, cold, {} Pis".format(len(names)), "site.yml", inv, forks=max(forks_values))
        cold["forks"] = max(forks_values)
        by_size = {}  # type: Dict[int, float]
        for forks in forks_values:
            for n in sizes:
                estimate = by_size.get(n, 0.0)  # the rollout and its trivial run at an earlier forks value
                if time.monotonic() - started + estimate > budget:
                    dropped.append("{} Pis at forks {} (estimated {:.0f} s)".format(n, forks, estimate))
                    continue
                limit = ",".join(names[:n])
                r = runner.playbook("rollout, {} Pis, forks {}".format(n, forks), "playbooks/rollout.yml", inv,
                                    forks=forks, limit=limit)
                r["forks"] = forks
                # The fixed cost of a run on the same Pis, measured right after (the yardstick: rollout <= 4x it).
                r["trivial"] = runner.playbook("trivial, {} Pis, forks {}".format(n, forks), str(trivial), inv,
                                               forks=forks, limit=limit)
                rollouts.append(r)
                spent = float(r["seconds"]) + float(r["trivial"]["seconds"])  # type: ignore[arg-type,index]
                by_size[n] = max(by_size.get(n, 0.0), spent)
    except (KeyboardInterrupt, SystemExit) as exc:
        aborted = why_aborted(exc)
    finally:
        fleet.close()
    if not single:
        return 1
    for r in single + ([cold] if cold else []) + rollouts:
        all_loads.append(float(r["load_mean"]))  # type: ignore[arg-type]
    loads_max = [float(r["load_max"]) for r in single + ([cold] if cold else []) + rollouts]  # type: ignore[arg-type]
    info = run_info(started, all_loads, loads_max, others)
    info["aborted"] = aborted
    write_report(args.output, info, single, cold, rollouts, dropped)
    (log_dir / "results.json").write_text(json.dumps({"info": info, "single": single, "cold": cold,
                                                      "rollouts": rollouts, "dropped": dropped}, indent=1))
    print("[bench] wrote {}; logs in {}".format(args.output, log_dir), file=sys.stderr)
    return 1 if aborted else 0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
