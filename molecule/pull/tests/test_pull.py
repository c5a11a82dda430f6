"""ansible-pull converges the emulated Pi from a local git repository (role appliance_pull).

The tests run in order and share the Pi: the first pull converges the whole appliance from the
bare clone of the project (/srv/fleet.git, the host's molecule ephemeral fleet.git); later tests
push commits to that clone from the host and start the pull service again.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Optional

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SCENARIO_DIR = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
FIXTURE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "files" / "fixture"
BARE = EPHEMERAL / "fleet.git"
WORK = EPHEMERAL / "work"
GNUPG = EPHEMERAL / "gnupg"
UNIT = "voice-appliance-pull"
STATE = "/var/lib/voice-appliance/pull"
LOCK = "/run/lock/voice-appliance-pull.lock"
VENV = "/opt/voice-appliance/venv"
GIT_ID = ["-c", "user.name=Fleet Test", "-c", "user.email=fleet@example.invalid"]


def _git(*args: str, env: Optional[Dict[str, str]] = None) -> str:
    run = subprocess.run(["git"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, env=dict(os.environ, **(env or {})), check=False)
    assert run.returncode == 0, "git {} failed: {}".format(" ".join(args), run.stderr)
    return run.stdout.strip()


def _push_commit(note: str, sign: bool = False) -> str:
    """A new commit on the fleet's main branch (a harmless file: no built artifact's inputs change)."""
    if not WORK.exists():
        _git("clone", "--quiet", str(BARE), str(WORK))
    _git("-C", str(WORK), "pull", "--quiet", "--ff-only")
    with open(str(WORK / "fleet-notes.txt"), "a") as notes:
        notes.write(note + "\n")
    _git("-C", str(WORK), "add", "fleet-notes.txt")
    sign_args = ["-c", "user.signingkey=fleet@example.invalid", "commit", "-S"] if sign else ["commit"]
    _git("-C", str(WORK), *GIT_ID, *sign_args, "--quiet", "-m", note, env={"GNUPGHOME": str(GNUPG)})
    _git("-C", str(WORK), "push", "--quiet", "origin", "HEAD:main")
    return _git("-C", str(WORK), "rev-parse", "HEAD")


def _bare_head() -> str:
    return _git("--git-dir", str(BARE), "rev-parse", "refs/heads/main")


def _cursor(host: Any) -> str:
    """The journal's position now (what a run logs afterwards is read from here)."""
    out = host.check_output("journalctl -n 0 --show-cursor --no-pager")
    return out.split("-- cursor: ", 1)[1].strip()


def _last_run(host: Any, cursor: str) -> Dict[str, str]:
    """The latest run of the service: its result, exit status and what the Pi logged since `cursor`.

    Not by _SYSTEMD_INVOCATION_ID: journald loses the unit metadata of processes that end within
    milliseconds (the 'nothing to do' run), so their lines would be missing.
    """
    show = host.check_output("systemctl show -p InvocationID -p Result -p ExecMainStatus -p ActiveState " + UNIT + ".service")
    props = dict(line.split("=", 1) for line in show.splitlines())
    host.run("journalctl --sync")
    props["log"] = host.check_output("journalctl --no-pager -o cat --after-cursor={}".format(_cursor_arg(cursor)))
    return props


def _cursor_arg(cursor: str) -> str:
    return "'" + cursor.replace("'", "'\\''") + "'"


def _pull(host: Any) -> Dict[str, str]:
    """Start the pull service the way the timer does and wait for it (a oneshot: start returns when it ends)."""
    cursor = _cursor(host)
    started = time.monotonic()
    host.run("systemctl start " + UNIT + ".service")
    props = _last_run(host, cursor)
    props["seconds"] = "{:.0f}".format(time.monotonic() - started)
    return props


def _converged(host: Any) -> str:
    return host.file(STATE + "/converged-commit").content_string.strip()


def test_the_timer_is_active_with_a_random_delay_and_persistent(host: Any) -> None:
    assert host.service(UNIT + ".timer").is_enabled
    assert host.service(UNIT + ".timer").is_running
    show = host.check_output("systemctl show -p RandomizedDelayUSec -p Persistent " + UNIT + ".timer")
    assert "RandomizedDelayUSec=30min" in show and "Persistent=yes" in show, show


def test_the_first_pull_converges_the_appliance(host: Any) -> None:
    run = _pull(host)
    assert run["Result"] == "success" and run["ExecMainStatus"] == "0", run["log"][-4000:]
    assert "PLAY RECAP" in run["log"] and "failed=0" in run["log"], run["log"][-4000:]
    assert _converged(host) == _bare_head()
    # The run's fleet report (this Pi's row) is kept in the state directory.
    report = json.loads(host.file(STATE + "/report/fleet-report.json").content_string)
    rows = {row["host"]: row for row in report["hosts"]}
    assert rows["pull-bookworm-amd64"]["status"] == "ok", rows
    print("first pull: {} s".format(run["seconds"]))


def test_the_converged_pi_transcribes_the_recorded_wav(host: Any) -> None:
    wav = base64.b64encode((FIXTURE / "das_ist_ein_test.wav").read_bytes()).decode("ascii")
    host.run_test("echo {} | base64 -d > /root/das_ist_ein_test.wav".format(wav))
    out = host.check_output(VENV + "/bin/deepspeech --model /opt/voice-appliance/models/current/output_graph.tflite"
                            " --audio /root/das_ist_ein_test.wav 2>/dev/null")
    assert out.strip() == (FIXTURE / "das_ist_ein_test.txt").read_text().strip() == "das ist ein test"


def test_the_hermes_asr_service_runs(host: Any) -> None:
    service = host.service("rhasspy-asr-deepspeech-hermes.service")
    assert service.is_enabled and service.is_running
    cmdline = host.check_output("systemctl show -p ExecStart --value rhasspy-asr-deepspeech-hermes.service")
    assert "--port 18833" in cmdline, cmdline


def test_the_pull_run_staged_built_artifacts_from_the_mirror(host: Any) -> None:
    """Nothing was built on the Pi: the tools tarball and the wheels came from the controller's cache."""
    requests = [json.loads(line) for line in (EPHEMERAL / "mirror.jsonl").read_text().splitlines() if line.strip()]
    served = {r["path"] for r in requests if r.get("status") == 200}
    for prefix in ("/deepspeech-tools/deepspeech-tools-amd64-", "/compat-wheels/", "/rhasspy-asr-wheels/"):
        assert any(p.startswith(prefix) for p in served), (prefix, sorted(served))
    sidecar = host.check_output("cat " + STATE + "/cache/artifacts/deepspeech-tools/*.tar.gz.sha256")
    tarball = host.check_output("cd " + STATE + "/cache/artifacts/deepspeech-tools && sha256sum *.tar.gz")
    assert sidecar.split()[0] == tarball.split()[0], (sidecar, tarball)


def test_an_unchanged_commit_does_nothing(host: Any) -> None:
    before = host.file(STATE + "/converged-commit").mtime
    run = _pull(host)
    assert run["Result"] == "success", run["log"]
    assert "already converged successfully; nothing to do" in run["log"], run["log"]
    assert "PLAY" not in run["log"], "no playbook may run for an unchanged commit"
    assert host.file(STATE + "/converged-commit").mtime == before


def test_a_tick_while_another_run_holds_the_lock_is_skipped(host: Any) -> None:
    commit = _push_commit("pending while locked")
    host.run_test("systemd-run --unit=pull-lock-holder --collect flock " + LOCK + " sleep 60")
    deadline = time.monotonic() + 30
    while host.run("flock --nonblock " + LOCK + " true").rc == 0:  # until the holder has it
        assert time.monotonic() < deadline, "the lock holder did not take the lock"
        time.sleep(0.2)
    try:
        run = _pull(host)
    finally:
        host.run("systemctl stop pull-lock-holder.service")
    assert run["ExecMainStatus"] == "75" and run["Result"] == "success", run
    assert "failed to get lock" in run["log"], run["log"]
    assert _converged(host) != commit


def _converge_with(extra: Dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", "@" + str(tmp_path / "extra.json"),
                          str(SCENARIO_DIR / "converge.yml")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]


def test_with_the_signature_check_an_unsigned_commit_is_refused_and_retried(host: Any, tmp_path: Path) -> None:
    _converge_with({"appliance_pull_verify_commit": True,
                    "appliance_pull_gpg_public_keys": [(EPHEMERAL / "fleet-key.asc").read_text()]}, tmp_path)
    last = _converged(host)
    unsigned = _push_commit("unsigned")
    for attempt in (1, 2):  # a refused commit is not recorded: the next tick tries it again
        run = _pull(host)
        assert run["Result"] == "exit-code" and run["ExecMainStatus"] == "1", (attempt, run)
        assert "Failed to verify GPG signature" in run["log"], run["log"][-3000:]
        assert "commit {} is not signed by a key of the fleet's keyring".format(unsigned) in run["log"], run["log"][-3000:]
        assert "PLAY RECAP" not in run["log"], "no playbook may run for a refused commit"
        assert _converged(host) == last


def test_with_the_signature_check_a_signed_commit_converges_and_a_run_meanwhile_is_refused(host: Any) -> None:
    """A new (signed) commit converges again; a run by hand while it runs is refused by the lock."""
    signed = _push_commit("signed by the fleet's key", sign=True)
    started = time.monotonic()
    cursor = _cursor(host)
    host.run_test("systemctl start --no-block " + UNIT + ".service")
    deadline = time.monotonic() + 60
    while host.run("systemctl is-active " + UNIT + ".service").stdout.strip() != "activating":
        assert time.monotonic() < deadline, "the pull service did not start"
        time.sleep(0.5)
    by_hand = host.run("/usr/local/sbin/voice-appliance-pull")
    assert by_hand.rc == 75, (by_hand.rc, by_hand.stdout, by_hand.stderr)
    assert "another run holds " + LOCK in by_hand.stderr, by_hand.stderr
    while host.run("systemctl is-active " + UNIT + ".service").stdout.strip() == "activating":
        assert time.monotonic() < deadline + 1800, "the pull run did not finish"
        time.sleep(2)
    run = _last_run(host, cursor)
    assert run["Result"] == "success" and run["ExecMainStatus"] == "0", run["log"][-4000:]
    assert "converging commit " + signed in run["log"] and "PLAY RECAP" in run["log"], run["log"][-4000:]
    assert _converged(host) == signed
    print("signed commit converged in {:.0f} s".format(time.monotonic() - started))


def test_an_unreachable_repository_fails_clearly_and_changes_nothing(host: Any) -> None:
    last = _converged(host)
    run = host.run("/usr/local/sbin/voice-appliance-pull --url file:///srv/no-such-fleet.git")
    assert run.rc == 1, (run.rc, run.stdout, run.stderr)
    assert "cannot reach the repository file:///srv/no-such-fleet.git" in run.stderr, run.stderr
    assert _converged(host) == last


def test_check_mode_of_the_role_reports_no_changes() -> None:
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    run = subprocess.run(["ansible-playbook", "--check", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                          "-e", json.dumps({"appliance_pull_verify_commit": True,
                                            "appliance_pull_gpg_public_keys": [(EPHEMERAL / "fleet-key.asc").read_text()]}),
                          str(SCENARIO_DIR / "converge.yml")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False, timeout=600)
    start = run.stdout.find("{\n")
    assert start >= 0, run.stdout[-3000:] + run.stderr[-2000:]
    report, _ = json.JSONDecoder().raw_decode(run.stdout[start:])
    assert run.returncode == 0, run.stderr[-2000:]
    assert all(s["changed"] == 0 and s["failures"] == 0 for s in report["stats"].values()), report["stats"]
