"""systemd_units, a role's unit files in one call on the Pi: which files differ (content, owner, mode, a link in
their place), the changed ones verified together by the real systemd-analyze before anything is written, atomic
writes, and what systemctl is asked to do (reload once, enable, start, restart) for drifted units."""
from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("systemd_units_module", str(REPO / "plugins" / "modules" / "systemd_units.py"))
assert _spec is not None and _spec.loader is not None
units: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(units)

SERVICE = "[Unit]\nDescription=Retrain\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
PATH_UNIT = "[Unit]\nDescription=Watch\n\n[Path]\nPathChanged=/etc/hostname\nUnit=demo-retrain.service\n\n[Install]\nWantedBy=paths.target\n"
ROOT = os.geteuid() == 0


def _units() -> List[Dict[str, Any]]:
    return [{"name": "demo-retrain.service", "content": SERVICE}, {"name": "demo-retrain.path", "content": PATH_UNIT}]


class Recorder:
    """Stands in for systemctl (the real one would act on this machine's systemd) and records the calls."""

    def __init__(self, show: str = "") -> None:
        self.calls: List[List[str]] = []
        self.show = show

    def __call__(self, argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, self.show, None)


def test_missing_unit_files_are_to_be_created(tmp_path: Path) -> None:
    assert units.file_changes(_units(), str(tmp_path)) == {"demo-retrain.service": ["created"], "demo-retrain.path": ["created"]}


@pytest.mark.skipif(not ROOT, reason="unit files are written root-owned")
def test_written_units_are_root_owned_0644_and_then_unchanged(tmp_path: Path) -> None:
    for entry in _units():
        units.write(str(tmp_path), entry["name"], entry["content"])
    assert units.file_changes(_units(), str(tmp_path)) == {}
    written = tmp_path / "demo-retrain.path"
    assert written.read_text() == PATH_UNIT
    assert stat.S_IMODE(written.stat().st_mode) == 0o644 and (written.stat().st_uid, written.stat().st_gid) == (0, 0)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "a temporary file was left behind"


def test_an_edited_file_a_wrong_mode_and_a_link_in_its_place_are_changes(tmp_path: Path) -> None:
    (tmp_path / "demo-retrain.service").write_text(SERVICE.replace("/bin/true", "/bin/false"))
    os.chmod(tmp_path / "demo-retrain.service", 0o666)
    os.symlink("/dev/null", tmp_path / "demo-retrain.path")  # a masked unit
    before: dict = {}
    changes = units.file_changes(_units(), str(tmp_path), before)
    assert changes["demo-retrain.service"][0] == "content" and "mode" in changes["demo-retrain.service"]
    assert changes["demo-retrain.path"] == ["content"]
    assert before == {"demo-retrain.service": SERVICE.replace("/bin/true", "/bin/false"), "demo-retrain.path": ""}


def test_content_without_a_final_newline_is_compared_with_one(tmp_path: Path) -> None:
    (tmp_path / "demo-retrain.service").write_text(SERVICE)
    os.chmod(tmp_path / "demo-retrain.service", 0o644)
    os.chown(tmp_path / "demo-retrain.service", 0, 0) if ROOT else None
    found = units.file_changes([{"name": "demo-retrain.service", "content": SERVICE.rstrip("\n")}], str(tmp_path))
    assert "content" not in found.get("demo-retrain.service", [])


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["../evil.service", "/etc/systemd/system/x.service", "voice-retrain", "a b.service", ""])
def test_a_unit_name_that_is_a_path_or_has_no_type_is_refused(name: str) -> None:
    with pytest.raises(units.UnitsError, match="unit name"):
        units.check_request([{"name": name, "content": SERVICE}], [], [])


@pytest.mark.bad_input
def test_a_unit_given_twice_or_empty_is_refused() -> None:
    with pytest.raises(units.UnitsError, match="given twice"):
        units.check_request([{"name": "a.service", "content": SERVICE}, {"name": "a.service", "content": SERVICE}], [], [])
    with pytest.raises(units.UnitsError, match="content is empty"):
        units.check_request([{"name": "a.service", "content": "  \n"}], [], [])
    with pytest.raises(units.UnitsError, match="not a unit name"):
        units.check_request([{"name": "a.service", "content": SERVICE}], ["../a.service"], [])


@pytest.mark.skipif(not os.path.exists("/usr/bin/systemd-analyze"), reason="needs systemd-analyze")
def test_the_real_systemd_analyze_passes_good_units_together() -> None:
    units.verify(_units(), ["demo-retrain.service", "demo-retrain.path"])


@pytest.mark.bad_input
@pytest.mark.skipif(not os.path.exists("/usr/bin/systemd-analyze"), reason="needs systemd-analyze")
def test_the_real_systemd_analyze_refuses_a_bad_unit_naming_it() -> None:
    bad = [{"name": "demo-retrain.service", "content": "[Unit]\nDescription=x\n\n[Service]\nExecStart=relative/path\n"}]
    with pytest.raises(units.UnitsError) as refused:
        units.verify(bad, ["demo-retrain.service"])
    message = str(refused.value)
    assert "demo-retrain.service" in message and "nothing was installed" in message and "systemd-units-" not in message


def test_states_are_read_in_one_systemctl_call() -> None:
    show = ("Id=a.path\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n"
            "Id=b.service\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n")
    run = Recorder(show)
    states = units.unit_states(["a.path", "b.service"], run)
    assert len(run.calls) == 1 and run.calls[0][:2] == ["systemctl", "show"]
    assert states["a.path"]["UnitFileState"] == "enabled" and states["b.service"]["LoadState"] == "not-found"


def _state(unit_file: str, active: str) -> Dict[str, str]:
    return {"UnitFileState": unit_file, "ActiveState": active, "LoadState": "loaded"}


def test_a_converged_unit_needs_nothing() -> None:
    assert units.service_changes(["a.path"], [], [], {"a.path": _state("enabled", "active")}) == {}


def test_drift_a_disabled_a_stopped_and_a_rewritten_unit() -> None:
    states = {"a.path": _state("disabled", "active"), "b.path": _state("enabled", "inactive"),
              "c.path": _state("", "active"), "d.service": _state("static", "active")}
    changes = units.service_changes(["a.path", "b.path", "c.path", "d.service"], [], ["c.path"], states)
    assert changes == {"a.path": ["enabled"], "b.path": ["started"], "c.path": ["enabled", "restarted"]}


def test_a_unit_the_caller_names_is_restarted_once_even_if_it_ran() -> None:
    changes = units.service_changes(["a.service"], ["a.service", "b.service"], [], {"a.service": _state("enabled", "active")})
    assert changes == {"a.service": ["restarted"], "b.service": ["restarted"]}


@pytest.mark.bad_input
def test_a_masked_unit_is_refused_with_the_fix() -> None:
    with pytest.raises(units.UnitsError, match="systemctl unmask a.path"):
        units.service_changes(["a.path"], [], [], {"a.path": _state("masked", "inactive")})


def test_systemd_reloads_once_then_enables_starts_and_restarts_in_batches() -> None:
    run = Recorder()
    changes = {"a.path": ["enabled"], "b.path": ["started"], "c.path": ["enabled", "restarted"], "d.service": ["restarted"]}
    units.act(changes, ["c.path"], run)
    assert run.calls == [["systemctl", "daemon-reload"], ["systemctl", "enable", "--", "a.path", "c.path"],
                         ["systemctl", "start", "--", "b.path"], ["systemctl", "restart", "--", "c.path", "d.service"]]


def test_nothing_changed_means_no_systemctl_call() -> None:
    run = Recorder()
    units.act({}, [], run)
    assert run.calls == []


def test_a_unit_turned_off_is_disabled_and_stopped_and_then_left_alone() -> None:
    states = {"p.timer": _state("enabled", "active")}
    assert units.service_changes([], [], [], states, ["p.timer"]) == {"p.timer": ["disabled", "stopped"]}
    assert units.service_changes([], [], [], {"p.timer": _state("disabled", "inactive")}, ["p.timer"]) == {}
    run = Recorder()
    units.act({"p.timer": ["disabled", "stopped"]}, [], run)
    assert run.calls == [["systemctl", "disable", "--", "p.timer"], ["systemctl", "stop", "--", "p.timer"]]


@pytest.mark.bad_input
def test_a_unit_both_stopped_and_started_is_refused() -> None:
    with pytest.raises(units.UnitsError, match="stopped and started at once"):
        units.check_request([{"name": "p.timer", "content": SERVICE}], ["p.timer"], [], ["p.timer"])


DROP_IN = "[Service]\nProtectSystem=strict\n"


@pytest.mark.skipif(not ROOT, reason="unit files are written root-owned")
def test_a_drop_in_is_written_into_its_units_directory_made_if_missing(tmp_path: Path) -> None:
    entry = {"name": "mosquitto.service.d/voice-appliance.conf", "content": DROP_IN}
    units.check_request([entry], ["mosquitto.service"], [])
    assert units.file_changes([entry], str(tmp_path)) == {"mosquitto.service.d/voice-appliance.conf": ["created"]}
    units.write(str(tmp_path), entry["name"], DROP_IN)
    written = tmp_path / "mosquitto.service.d" / "voice-appliance.conf"
    assert written.read_text() == DROP_IN and stat.S_IMODE(written.parent.stat().st_mode) == 0o755
    assert units.file_changes([entry], str(tmp_path)) == {}


def test_a_changed_drop_in_restarts_its_unit_and_is_not_verified_alone() -> None:
    changes = units.service_changes(["mosquitto.service"], [], ["mosquitto.service.d/voice-appliance.conf"],
                                    {"mosquitto.service": _state("enabled", "active")})
    assert changes == {"mosquitto.service": ["restarted"]}
    run = Recorder()
    units.verify([{"name": "mosquitto.service.d/voice-appliance.conf", "content": DROP_IN}],
                 ["mosquitto.service.d/voice-appliance.conf"], run)
    assert run.calls == []


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["mosquitto.service.d/../../passwd.conf", "../mosquitto.service.d/a.conf",
                                  "mosquitto.d/a.conf", "mosquitto.service.d/a.txt"])
def test_a_drop_in_name_that_leaves_its_directory_is_refused(name: str) -> None:
    with pytest.raises(units.UnitsError, match="unit name"):
        units.check_request([{"name": name, "content": DROP_IN}], [], [])


# --- the whole call (ensure): the receipt, written only once the units are in their wanted state ------------------

def _shows(*blocks: Dict[str, str]) -> str:
    return "\n\n".join("\n".join("{}={}".format(k, v) for k, v in block.items()) for block in blocks) + "\n"


class FailingStart(Recorder):
    """systemctl that cannot start a unit (the unit's process refuses its arguments, say)."""

    def __call__(self, argv: Sequence[str]) -> "subprocess.CompletedProcess[str]":
        done = super().__call__(argv)
        if list(argv[:2]) == ["systemctl", "start"]:
            return subprocess.CompletedProcess(list(argv), 1, "Job for demo.service failed.", None)
        return done


def test_the_receipt_is_reported_on_its_own_and_in_the_changes(tmp_path: Path) -> None:
    fact = tmp_path / "facts.d" / "rhasspy_asr.fact"
    receipt = {"path": str(fact), "content": '{"site_id": "kitchen"}\n'}
    running = Recorder(_shows({"Id": "demo.service", "UnitFileState": "enabled", "ActiveState": "active", "LoadState": "loaded"}))
    predicted = units.ensure([], ["demo.service"], [], [], str(tmp_path), receipt, check=True, run=running)
    assert predicted["receipt_changed"] and predicted["changed"] and predicted["changes"] == {str(fact): ["receipt"]}
    assert "receipt" not in predicted and not fact.parent.exists(), "check mode writes nothing, and the Pi does not hold it"
    written = units.ensure([], ["demo.service"], [], [], str(tmp_path), receipt, run=running)
    assert written["receipt_changed"] and written["changes"] == {str(fact): ["receipt"]} and written["receipt"] == receipt
    assert fact.read_text() == '{"site_id": "kitchen"}\n' and fact.stat().st_mode & 0o7777 == 0o644
    for check in (True, False):
        again = units.ensure([], ["demo.service"], [], [], str(tmp_path), receipt, check=check, run=running)
        assert (again["changed"], again["receipt_changed"], again["changes"], again["receipt"]) == (False, False, {}, receipt)
    without = units.ensure([], ["demo.service"], [], [], str(tmp_path), run=running)
    assert without["receipt_changed"] is False and "receipt" not in without


def test_a_unit_change_alone_leaves_receipt_changed_false(tmp_path: Path) -> None:
    fact = tmp_path / "rhasspy_asr.fact"
    receipt = {"path": str(fact), "content": "{}\n"}
    fact.write_text("{}\n")
    fact.chmod(0o644)
    stopped = Recorder(_shows({"Id": "demo.service", "UnitFileState": "enabled", "ActiveState": "inactive", "LoadState": "loaded"}))
    result = units.ensure([], ["demo.service"], [], [], str(tmp_path), receipt, run=stopped)
    assert result["changed"] and result["changes"] == {"demo.service": ["started"]} and result["receipt_changed"] is False
    assert ["systemctl", "start", "--", "demo.service"] in stopped.calls and result["receipt"] == receipt


@pytest.mark.bad_input
def test_a_failed_start_leaves_the_receipt_as_it_was(tmp_path: Path) -> None:
    fact = tmp_path / "rhasspy_asr.fact"
    fact.write_text('{"site_id": "old"}\n')
    failing = FailingStart(_shows({"Id": "demo.service", "UnitFileState": "enabled", "ActiveState": "failed", "LoadState": "loaded"}))
    with pytest.raises(units.UnitsError, match=r"systemctl start -- demo.service failed: Job for demo.service failed"):
        units.ensure([], ["demo.service"], [], [], str(tmp_path), {"path": str(fact), "content": '{"site_id": "new"}\n'}, run=failing)
    assert fact.read_text() == '{"site_id": "old"}\n', "the receipt never names what does not run"


def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def _with_files(tmp_path: Path, staged: Any = None) -> Dict[str, Any]:
    """The role's units with the files they use: a directory, a script given by its content, a recording given by its
    sum (the action plugin's wire form of a src) and a path that must go."""
    wav = b"RIFF" + b"\0" * 64
    return {"directories": [{"path": str(tmp_path / "lib"), "owner": "root", "group": "root", "mode": "0755"}],
            "files": [{"content": "#!/bin/sh\nexit 0\n", "dest": str(tmp_path / "lib" / "reload.sh"), "owner": "root",
                       "group": "root", "mode": "0755", "validate": "sh -n %s"},
                      {"sha256": _sha(wav), "size": len(wav), "dest": str(tmp_path / "lib" / "verify.wav"), "owner": "root",
                       "group": "root", "mode": "0644"}],
            "absent": [str(tmp_path / "old.env")], "staged": staged or {},
            "units": _units(), "started": ["demo-retrain.path"], "directory": str(tmp_path / "system")}


@pytest.mark.skipif(not ROOT, reason="unit files are written root-owned")
def test_the_units_wait_until_every_file_they_use_is_in_place_then_one_call_does_both(tmp_path: Path) -> None:
    (tmp_path / "system").mkdir()
    (tmp_path / "old.env").write_text("PASSWORD=x\n")
    stopped = Recorder(_shows({"Id": "demo-retrain.path", "UnitFileState": "", "ActiveState": "inactive", "LoadState": "not-found"}))
    # Check mode: the paths and the units are predicted, nothing is written and nothing sent.
    predicted = units.run(_with_files(tmp_path), check=True, want_diff=True, run=stopped)
    assert predicted["transfer"] == [str(tmp_path / "lib" / "verify.wav")] and predicted["files_changed"] == ["demo-retrain.service", "demo-retrain.path"]
    assert set(predicted["changes"]) == {str(tmp_path / "lib"), str(tmp_path / "lib" / "reload.sh"), str(tmp_path / "lib" / "verify.wav"),
                                         str(tmp_path / "old.env"), "demo-retrain.service", "demo-retrain.path"}
    assert len(predicted["diff"]) == 3 and not (tmp_path / "lib").exists() and (tmp_path / "old.env").exists()
    # The first run: the paths are put in place, the recording is to be sent; no unit is installed without it.
    stopped.calls.clear()
    first = units.run(_with_files(tmp_path), want_diff=True, run=stopped)
    assert first["work_pending"] and first["transfer"] == [str(tmp_path / "lib" / "verify.wav")] and first["files_changed"] == []
    assert (tmp_path / "lib" / "reload.sh").read_text() == "#!/bin/sh\nexit 0\n" and not (tmp_path / "old.env").exists()
    assert list((tmp_path / "system").iterdir()) == [] and stopped.calls == [], "not even verified or asked about"
    # The second run, with the recording staged: it is put in place, then the units installed and started.
    sent = tmp_path / "source-0"
    sent.write_bytes(b"RIFF" + b"\0" * 64)
    second = units.run(dict(_with_files(tmp_path, {str(tmp_path / "lib" / "verify.wav"): str(sent)}),
                            files=[_with_files(tmp_path)["files"][1]], directories=[], absent=[]), want_diff=True, run=stopped)
    assert second["changes"] == {str(tmp_path / "lib" / "verify.wav"): ["created"], "demo-retrain.service": ["created"],
                                 "demo-retrain.path": ["created", "enabled", "restarted"]}
    assert len(second["diff"]) == 2, "the sent file's diff is the first run's"
    assert (tmp_path / "system" / "demo-retrain.path").read_text() == PATH_UNIT
    assert ["systemctl", "restart", "--", "demo-retrain.path"] in stopped.calls
    # Converged: one call, nothing to send, nothing changed.
    running = Recorder(_shows({"Id": "demo-retrain.path", "UnitFileState": "enabled", "ActiveState": "active", "LoadState": "loaded"}))
    again = units.run(_with_files(tmp_path), want_diff=True, run=running)
    assert (again["changed"], again["changes"], again["transfer"], again["diff"]) == (False, {}, [], [])
    assert "work_pending" not in again and again["files"] == [str(tmp_path / "lib" / "reload.sh"), str(tmp_path / "lib" / "verify.wav")]


@pytest.mark.bad_input
def test_a_file_that_cannot_be_put_in_place_stops_the_call_before_any_unit(tmp_path: Path) -> None:
    recorder = Recorder()
    params = dict(_with_files(tmp_path), files=[{"content": "if then\n", "dest": str(tmp_path / "reload.sh"), "owner": "root",
                                                 "group": "root", "mode": "0755", "validate": "sh -n %s"}], directories=[])
    with pytest.raises(Exception, match="reload.sh"):
        units.run(params, run=recorder)
    assert recorder.calls == [] and not (tmp_path / "system").exists() and not (tmp_path / "reload.sh").exists()


def test_the_action_plugin_merges_both_runs_into_one_result() -> None:
    from ansible_collections.pivoice.voice_appliance.plugins.action.paths_state import merge_work as merge
    first = {"changed": True, "changes": {"/lib": ["created"]}, "files": ["/lib/a.wav"], "transfer": ["/lib/a.wav"],
             "work_pending": True, "files_changed": [], "diff": [{"before": "", "after": "/lib"}]}
    second = {"changed": True, "changes": {"/lib/a.wav": ["created"], "demo.service": ["created"]}, "files": ["/lib/a.wav"],
              "transfer": [], "files_changed": ["demo.service"], "receipt_changed": False, "diff": [{"before": "", "after": "[Unit]"}]}
    merged = merge(dict(first, changes={"/lib": ["created"], "demo.service": ["created"]}), dict(second, changes={"demo.service": ["created", "started"]}))
    assert merged["changes"] == {"/lib": ["created"], "demo.service": ["created", "started"]}, "what both runs did to a path, once each"
    merged = merge(first, second)
    assert merged["changes"] == {"/lib": ["created"], "/lib/a.wav": ["created"], "demo.service": ["created"]}
    assert (merged["transfer"], merged["files_changed"], len(merged["diff"]), "work_pending" in merged) == ([], ["demo.service"], 2, False)
    failed = merge(first, {"failed": True, "msg": "systemd-analyze verify refused demo.service", "changes": {}})
    assert failed["failed"] and failed["changes"] == {"/lib": ["created"]}, "a failed second run still says what the first changed"


@pytest.mark.skipif(not ROOT, reason="unit files are written root-owned")
def test_a_unit_is_restarted_when_a_file_it_reads_changed_also_across_the_two_runs(tmp_path: Path) -> None:
    (tmp_path / "system").mkdir()
    listener = tmp_path / "listener.conf"
    params = {"files": [{"content": "listener 1883 127.0.0.1\n", "dest": str(listener), "owner": "root", "group": "root", "mode": "0644"}],
              "units": [], "started": ["demo.service"], "restart_on": {"demo.service": [str(listener)], "other.service": ["/nowhere"]},
              "directory": str(tmp_path / "system")}
    running = Recorder(_shows({"Id": "demo.service", "UnitFileState": "enabled", "ActiveState": "active", "LoadState": "loaded"}))
    first = units.run(params, run=running)
    assert first["changes"] == {str(listener): ["created"], "demo.service": ["restarted"]}
    assert running.calls[-1] == ["systemctl", "restart", "--", "demo.service"]
    running.calls.clear()
    assert units.run(params, run=running)["changes"] == {} and running.calls[-1][:2] == ["systemctl", "show"], "unchanged: no restart"
    # A run that waits for a file to be sent passes the restart its own changes call for on to the second run.
    wav = b"RIFF"
    pending = units.run(dict(params, files=params["files"] + [{"sha256": _sha(wav), "size": 4, "dest": str(tmp_path / "a.wav"),
                                                              "owner": "root", "group": "root", "mode": "0644"}],
                             restarted=["demo.service"]), run=running)
    assert pending["work_pending"] and pending["restarts_due"] == ["demo.service"]
    listener.write_text("listener 1884\n")
    pending = units.run(dict(params, files=params["files"] + [{"sha256": _sha(wav), "size": 4, "dest": str(tmp_path / "a.wav"),
                                                              "owner": "root", "group": "root", "mode": "0644"}]), run=running)
    assert pending["restarts_due"] == ["demo.service"] and listener.read_text() == "listener 1883 127.0.0.1\n"
    assert units.restarts_due({"a.service": ["/x"], "b.service": []}, {"/x": ["content"]}) == ["a.service"]


def test_the_second_run_gets_the_units_the_sent_files_and_the_restarts_the_first_found_due() -> None:
    from ansible_collections.pivoice.voice_appliance.plugins.action.systemd_units import ActionModule
    action = ActionModule.__new__(ActionModule)  # (_second_args reads no state of the task)
    args = {"directories": [{"path": "/lib"}], "files": [{"dest": "/lib/a.wav"}, {"dest": "/lib/b.conf"}], "absent": ["/old"],
            "units": _units(), "started": ["demo-retrain.path"], "restarted": ["x.service"], "restart_on": {"x.service": ["/lib/b.conf"]}}
    wire = [{"dest": "/lib/a.wav", "sha256": "0" * 64, "size": 4}, {"dest": "/lib/b.conf", "content": "b"}]
    second = action._second_args(args, wire, {"/lib/a.wav": "/tmp/source-0"},
                                 {"restarts_due": ["x.service", "demo-retrain.path"], "work_pending": True})
    assert second == {"units": _units(), "started": ["demo-retrain.path"], "restarted": ["x.service", "demo-retrain.path"],
                      "restart_on": {"x.service": ["/lib/b.conf"]}, "files": [wire[0]], "staged": {"/lib/a.wav": "/tmp/source-0"}}
