"""ansible-pull converges the emulated Pi from a local git repository (role appliance_pull).

The tests run in order and share the Pi: the first pull converges the whole appliance from the
bare clone of the project (/srv/fleet.git, the host's molecule ephemeral fleet.git); later tests
push commits to that clone from the host and start the pull service again.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SCENARIO_DIR = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
FIXTURE = PROJECT / "files" / "fixture"
BARE = EPHEMERAL / "fleet.git"
WORK = EPHEMERAL / "work"
GNUPG = EPHEMERAL / "gnupg"
UNIT = "voice-appliance-pull"
STATE = "/var/lib/voice-appliance-pull"
OLD_STATE = "/var/lib/voice-appliance/pull"
CONFIG = "/etc/voice-appliance/pull"
SCRIPT = "/usr/local/sbin/voice-appliance-pull"
LOCK = STATE + "/lock"
MIRROR = "http://127.0.0.1:8733"
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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _as_voice(host: Any, command: str) -> Any:
    """Run a shell command as the appliance's unprivileged account."""
    return host.run("runuser -u voice -- sh -c " + _quote(command))


def _fingerprint(host: Any, paths: List[str]) -> str:
    """Owner, mode, size, mtime and content hash of root's files (what an attack would change)."""
    return host.check_output("stat -c '%n %u %g %a %s %Y %F' {0} && sha256sum {0}".format(" ".join(paths)))


def _mirror_faults(faults: Dict[str, str]) -> None:
    method = "PUT" if faults else "DELETE"
    request = urllib.request.Request(MIRROR + "/_faults", data=json.dumps(faults).encode(), method=method)
    urllib.request.urlopen(request, timeout=10).read()


def _scenario_vars() -> Dict[str, Any]:
    scenario = yaml.safe_load((SCENARIO_DIR / "molecule.yml").read_text())
    return dict(scenario["provisioner"]["inventory"]["group_vars"]["voice_assistants"])


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


def test_the_state_and_the_settings_are_root_s_alone(host: Any) -> None:
    """Everything the root run writes in, reads settings from or runs: root-owned, no other account can write."""
    state = host.file(STATE)
    assert state.is_directory and not state.is_symlink and state.uid == 0 and state.mode == 0o700, (state.uid, oct(state.mode))
    for parent in ("/var/lib", "/var", CONFIG, "/etc/voice-appliance", "/opt/voice-appliance", "/opt/voice-appliance/pull-venv"):
        item = host.file(parent)
        assert item.uid == 0 and not item.is_symlink and item.mode & 0o022 == 0, (parent, item.uid, oct(item.mode))
    for secret in (CONFIG + "/pull.conf", CONFIG + "/inventory/hosts.yml"):
        item = host.file(secret)
        assert item.uid == 0 and item.mode == 0o600, (secret, oct(item.mode))
    assert not host.file(OLD_STATE).exists, "the old state directory below the voice account's directory is gone"
    assert "PULL_LOCK=" + LOCK in host.check_output("cat " + CONFIG + "/pull.conf")


def _stated_exposure() -> float:
    readme = (PROJECT / "roles" / "appliance_pull" / "README.md").read_text()
    match = re.search(r"systemd-analyze security[^\n]*?exposure (?:level )?\*\*([0-9]+\.[0-9])\*\*", readme)
    assert match, "the role README states the unit's systemd-analyze security exposure as **N.N**"
    return float(match.group(1))


def test_the_pull_unit_is_no_more_exposed_than_its_readme_states(host: Any) -> None:
    out = host.check_output("systemd-analyze security --no-pager " + UNIT + ".service")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out[-2000:]
    print("systemd-analyze security {}.service: {}".format(UNIT, match.group(1)))
    assert float(match.group(1)) <= _stated_exposure(), out[-3000:]


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
    # Each built artifact taken is the one pinned in the repository the Pi pulled (built-artifacts.sha256).
    pins = dict(line.split()[::-1] for line in (EPHEMERAL / "checkout" / "built-artifacts.sha256").read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    taken = host.check_output("cd " + STATE + "/cache/artifacts && sha256sum deepspeech-tools/*.tar.gz compat-wheels/*/*.whl"
                              " rhasspy-asr-wheels/*/*.whl")
    for line in taken.splitlines():
        digest, path = line.split()
        assert pins.get(path) == digest, (path, digest, pins.get(path))


def test_an_unchanged_commit_does_nothing(host: Any) -> None:
    before = host.file(STATE + "/converged-commit").mtime
    run = _pull(host)
    assert run["Result"] == "success", run["log"]
    assert "already converged successfully; nothing to do" in run["log"], run["log"]
    assert "PLAY" not in run["log"], "no playbook may run for an unchanged commit"
    assert host.file(STATE + "/converged-commit").mtime == before


SENTINELS = ["/root/pull-sentinel", "/etc/pull-shadow-sentinel", "/root/pull-sentinel-dir/keep"]


def test_the_voice_account_cannot_reach_any_path_the_root_run_writes(host: Any, tmp_path: Path) -> None:
    """As voice: swap, rename and symlink attacks on every path the root run uses; root's files stay untouched."""
    host.run_test("install -d -m 0700 /root/pull-sentinel-dir && printf 'KEEP\\n' > /root/pull-sentinel-dir/keep"
                  " && printf 'ROOT-SENTINEL\\n' > /root/pull-sentinel && chmod 0600 /root/pull-sentinel"
                  " && printf 'root:$6$sentinel:19000::::::\\n' > /etc/pull-shadow-sentinel && chmod 0640 /etc/pull-shadow-sentinel")
    before = _fingerprint(host, SENTINELS)
    state_before = _fingerprint(host, [STATE + "/converged-commit", CONFIG + "/pull.conf", SCRIPT])
    attacks = {
        "write into the state directory": "touch " + STATE + "/planted",
        "plant a link for last-run": "ln -sf /root/pull-sentinel " + STATE + "/last-run",
        "plant a link for converged-commit": "ln -sf /etc/pull-shadow-sentinel " + STATE + "/converged-commit",
        "rename the state directory away": "mv " + STATE + " " + STATE + ".old",
        "put its own state directory beside it": "mkdir " + STATE + ".voice",
        "read the checkout or cache": "ls " + STATE + "/checkout " + STATE + "/cache",
        "take the run's lock": "flock --nonblock " + LOCK + " true",
        "change the settings": "echo PULL_URL=file:///tmp/evil.git >> " + CONFIG + "/pull.conf",
        "swap the settings directory": "mv " + CONFIG + " " + CONFIG + ".old",
        "plant a file in ansible-core's virtualenv": "touch /opt/voice-appliance/pull-venv/bin/ansible-pull",
        "replace the run script": "ln -sf /bin/sh " + SCRIPT,
    }
    for what, command in attacks.items():
        run = _as_voice(host, command)
        assert run.rc != 0, "voice could {}: {}".format(what, command)
    # The old location lies in the voice account's directory: voice fills it with links to root's files.
    planted = _as_voice(host, "rm -rf {0} && mkdir -p {0} && ln -s /root/pull-sentinel {0}/last-run"
                              " && ln -s /etc/pull-shadow-sentinel {0}/converged-commit && ln -s /root/pull-sentinel {0}/ls-remote.err"
                              " && ln -s /root/pull-sentinel-dir {0}/checkout && ln -s /root/pull-sentinel-dir {0}/cache".format(OLD_STATE))
    assert planted.rc == 0, planted.stderr
    # Runs that write state: nothing to do, an unreachable repository (writes last-run and the ls-remote error).
    assert "nothing to do" in _pull(host)["log"]
    unreachable = host.run(SCRIPT + " --url file:///srv/no-such-fleet.git")
    assert unreachable.rc == 1, unreachable.stderr
    assert host.file(STATE + "/last-run").is_file and not host.file(STATE + "/last-run").is_symlink
    assert "repository unreachable" in host.file(STATE + "/last-run").content_string
    # The role again: it removes the old directory without following voice's links.
    _converge_with({}, tmp_path)
    assert not host.file(OLD_STATE).exists
    assert _fingerprint(host, SENTINELS) == before, "a root file changed"
    assert _fingerprint(host, [STATE + "/converged-commit", CONFIG + "/pull.conf", SCRIPT]) == state_before
    assert host.run("ls -A " + STATE + " | grep -E '^(planted|\\.ls-remote)'").rc == 1
    assert not host.file(STATE + ".old").exists and not host.file(STATE + ".voice").exists


def test_an_unsafe_state_directory_is_refused_and_nothing_changes(host: Any) -> None:
    last = _converged(host)
    try:
        host.run_test("chmod 0755 " + STATE)
        run = host.run(SCRIPT)
        assert run.rc == 2, (run.rc, run.stdout, run.stderr)
        assert "refusing to run: the state directory {} is not safe".format(STATE) in run.stderr, run.stderr
        assert "mode 755 (needs root and 0700)" in run.stderr and "chmod 0700" in run.stderr, run.stderr
    finally:
        host.run_test("chmod 0700 " + STATE)
    try:  # a state directory swapped for a link (to a directory that is fine itself)
        host.run_test("mv {0} {0}.real && ln -s {0}.real {0}".format(STATE))
        run = host.run(SCRIPT)
        assert run.rc == 2 and "is not a directory (or is a symbolic link)" in run.stderr, (run.rc, run.stderr)
    finally:
        host.run_test("rm {0} && mv {0}.real {0}".format(STATE))
    mode = host.check_output("stat -c %a /var/lib")
    try:  # a parent another account can write to
        host.run_test("chmod 0777 /var/lib")
        run = host.run(SCRIPT)
        assert run.rc == 2 and "its parent /var/lib is owned by uid 0 with mode 777" in run.stderr, (run.rc, run.stderr)
    finally:
        host.run_test("chmod " + mode + " /var/lib")
    assert _converged(host) == last


def test_plain_text_repository_urls_are_refused_by_the_run(host: Any) -> None:
    last = _converged(host)
    for url in ("http://127.0.0.1:9/fleet.git", "git://127.0.0.1/fleet.git", "/srv/fleet.git", "ext::sh -c id"):
        run = host.run(SCRIPT + " --url " + _quote(url))
        assert run.rc == 2, (url, run.rc, run.stderr)
        assert "refusing the repository '{}': a plain-text or unknown transport".format(url) in run.stderr, run.stderr
        assert "over https:// or ssh" in run.stderr, run.stderr
    assert _converged(host) == last


def test_the_role_refuses_plain_text_urls_and_a_signature_check_without_keys(host: Any, tmp_path: Path) -> None:
    conf = host.file(CONFIG + "/pull.conf").content_string
    out = _converge_with({"appliance_pull_repo_url": "http://git.example/fleet.git"}, tmp_path, ok=False)
    assert "appliance_pull_repo_url is http://git.example/fleet.git: a plain-text or unknown transport" in out, out[-3000:]
    out = _converge_with({"appliance_pull_gpg_public_keys": []}, tmp_path, ok=False)
    assert "appliance_pull_verify_commit is true (the default) but appliance_pull_gpg_public_keys is empty" in out, out[-3000:]
    assert host.file(CONFIG + "/pull.conf").content_string == conf, "a refused converge changes nothing"


def test_turning_the_signature_check_off_is_warned_in_the_play_and_on_every_run(host: Any, tmp_path: Path) -> None:
    try:
        out = _converge_with({"appliance_pull_verify_commit": False}, tmp_path)
        assert "WARNING: appliance_pull_verify_commit is false" in out, out[-3000:]
        for _ in (1, 2):
            run = _pull(host)
            assert "WARNING: commit signature verification is off (appliance_pull_verify_commit: false)" in run["log"], run["log"]
    finally:
        _converge_with({}, tmp_path)
    assert "signature verification is off" not in _pull(host)["log"]


def test_secrets_never_appear_in_diff_or_verbose_output(host: Any, tmp_path: Path) -> None:
    sentinel = "pull-secret-sentinel-7f3a9c"
    host_vars = dict(_scenario_vars()["appliance_pull_host_vars"], voice_appliance_mqtt_password=sentinel)
    try:
        out = _converge_with({"appliance_pull_host_vars": host_vars,
                              "appliance_pull_pip_index_url": "https://fleet:{}@127.0.0.1:9/simple".format(sentinel)},
                             tmp_path, args=["--diff", "-v"])
        assert "changed: [pull-bookworm-amd64]" in out, "the secret files were rewritten: --diff had something to show"
        assert sentinel not in out, [line for line in out.splitlines() if sentinel in line]
        for path in (CONFIG + "/pull.conf", CONFIG + "/inventory/hosts.yml"):
            item = host.file(path)
            assert sentinel in host.check_output("cat " + path) and item.mode == 0o600 and item.uid == 0, path
    finally:
        _converge_with({}, tmp_path)
    assert sentinel not in host.check_output("cat {0}/pull.conf {0}/inventory/hosts.yml".format(CONFIG))


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


def _converge_with(extra: Dict[str, Any], tmp_path: Path, ok: bool = True, args: Optional[List[str]] = None) -> str:
    """Converge the role (converge.yml) with extra variables; its output (stdout and stderr)."""
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", "@" + str(tmp_path / "extra.json")]
                         + list(args or []) + [str(SCENARIO_DIR / "converge.yml")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=900)
    assert (run.returncode == 0) == ok, run.stdout[-4000:]
    return run.stdout


def test_an_unsigned_commit_is_refused_and_retried(host: Any) -> None:
    """Signature verification is on by default (the scenario gives the throwaway key)."""
    last = _converged(host)
    unsigned = _push_commit("unsigned")
    for attempt in (1, 2):  # a refused commit is not recorded: the next tick tries it again
        run = _pull(host)
        assert run["Result"] == "exit-code" and run["ExecMainStatus"] == "1", (attempt, run)
        assert "Failed to verify GPG signature" in run["log"], run["log"][-3000:]
        assert "commit {} is not signed by a key of the fleet's keyring".format(unsigned) in run["log"], run["log"][-3000:]
        assert "PLAY RECAP" not in run["log"], "no playbook may run for a refused commit"
        assert _converged(host) == last


def test_a_tampered_mirror_file_is_refused_and_nothing_on_the_pi_replaced(host: Any) -> None:
    """The mirror serves the tools tarball with altered bytes: refused by the repository's pin, nothing installed."""
    cache = STATE + "/cache/artifacts/deepspeech-tools"
    tarball = host.check_output("ls " + cache + " | grep -E '^deepspeech-tools-amd64-.*\\.tar\\.gz$'").splitlines()[0]
    tools_before = host.check_output("readlink -f /opt/voice-appliance/tools/current && ls -l --time-style=+%s /opt/voice-appliance/tools")
    last = _converged(host)
    signed = _push_commit("signed, while the mirror is tampered with", sign=True)
    host.run_test("mv {0}/{1} {0}/{1}.kept".format(cache, tarball))  # the Pi must fetch it again
    try:
        _mirror_faults({"/deepspeech-tools/" + tarball: "corrupt"})
        run = _pull(host)
    finally:
        _mirror_faults({})
        host.run_test("mv {0}/{1}.kept {0}/{1}".format(cache, tarball))
    assert run["Result"] == "exit-code", run["log"][-4000:]
    assert "converging commit " + signed in run["log"], run["log"][-4000:]
    assert "differs from the one pinned in" in run["log"] and "built-artifacts.sha256" in run["log"], run["log"][-4000:]
    assert "scripts/built_sums.py" in run["log"], run["log"][-4000:]
    assert _converged(host) == last
    assert host.check_output("readlink -f /opt/voice-appliance/tools/current && ls -l --time-style=+%s /opt/voice-appliance/tools") \
        == tools_before


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
    by_hand = host.run(SCRIPT)
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
    run = host.run(SCRIPT + " --url file:///srv/no-such-fleet.git")
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


def test_a_fleet_repository_that_pins_the_collection_converges_the_pi(host: Any, tmp_path: Path) -> None:
    """How a fleet really runs it: its own repository holds only its inventory, a requirements.yml pinning this
    collection (by commit, from the collection's git repository) and a playbook that imports
    pivoice.voice_appliance.pull. The run installs the pinned collection into its state directory, then converges
    from it, with the repository's own group_vars and built-artifact pins."""
    collection_commit = _bare_head()
    user = tmp_path / "user"
    (user / "inventory" / "group_vars").mkdir(parents=True)
    (user / "requirements.yml").write_text(yaml.safe_dump({"collections": [
        {"name": "git+file:///srv/fleet.git", "type": "git", "version": collection_commit}]}))
    (user / "pull.yml").write_text("---\n- name: Converge this Pi with the pinned collection.\n"
                                   "  ansible.builtin.import_playbook: pivoice.voice_appliance.pull\n")
    (user / "inventory" / "group_vars" / "voice_assistants.yml").write_text("---\nrhasspy_asr_beam_width: 400\n")
    (user / "built-artifacts.sha256").write_text(_git("--git-dir", str(BARE), "show", "main:built-artifacts.sha256") + "\n")
    _git("-C", str(user), "init", "--quiet", "--initial-branch=main")
    _git("-C", str(user), "add", ".")
    _git("-C", str(user), *GIT_ID, "-c", "user.signingkey=fleet@example.invalid", "commit", "-S", "--quiet", "-m", "our fleet",
         env={"GNUPGHOME": str(GNUPG)})
    commit = _git("-C", str(user), "rev-parse", "HEAD")
    _git("clone", "--bare", "--quiet", str(user), str(tmp_path / "user-fleet.git"))
    host.run("rm -rf /srv/user-fleet.git")
    subprocess.run(["docker", "cp", str(tmp_path / "user-fleet.git"), "pull-bookworm-amd64:/srv/user-fleet.git"], check=True)

    try:
        _converge_with({"appliance_pull_repo_url": "file:///srv/user-fleet.git", "appliance_pull_playbook": "pull.yml",
                        "appliance_pull_requirements": "requirements.yml"}, tmp_path)
        # What an earlier pin of the collection left: it goes once the new one is linked.
        host.run_expect([0], "mkdir -p " + STATE + "/collections.d/0ld0000000000000/ansible_collections")
        run = _pull(host)
    finally:
        _converge_with({}, tmp_path)  # the scenario's fork again (the check-mode test expects it)
    assert run["Result"] == "success" and run["ExecMainStatus"] == "0", run["log"][-5000:]
    assert "converging commit " + commit in run["log"] and "PLAY RECAP" in run["log"], run["log"][-4000:]
    assert _converged(host) == commit
    # The collection at the pinned commit, in the run's root-only state directory, linked when complete.
    installed = host.check_output("readlink " + STATE + "/collections")
    assert installed.startswith(STATE + "/collections.d/"), installed
    manifest = json.loads(host.file(installed + "/ansible_collections/pivoice/voice_appliance/MANIFEST.json").content_string)
    assert manifest["collection_info"]["name"] == "voice_appliance"
    assert host.file(installed + "/.complete").content_string == (user / "requirements.yml").read_text()
    assert host.check_output("ls -A " + STATE + "/collections.d").split() == [installed.rsplit("/", 1)[1]], \
        "the directories of earlier requirements must go"
    # The playbooks ran from the installed collection, with the fleet repository's inventory.
    assert "--beam-width 400" in host.check_output("systemctl show -p ExecStart --value rhasspy-asr-deepspeech-hermes.service")
    assert not host.file(STATE + "/checkout/roles").exists, "the fleet repository holds no roles: they came from the collection"
    print("a fleet repository pinning the collection converged in {} s".format(run["seconds"]))
