"""The rhasspy_asr role's profile merge: the module's logic, and the role's profile tasks on this controller.

The role runs against localhost (connection local) with a temporary profile path: a profile with the
user's own keys keeps them; invalid JSON stops the play with a clear message and changes nothing.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE_PATH = REPO / "plugins" / "modules" / "rhasspy_profile.py"

_spec = importlib.util.spec_from_file_location("rhasspy_profile_module", str(MODULE_PATH))
profile_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile_module)  # type: ignore[union-attr]

USER_PROFILE: Dict[str, Any] = {
    "language": "de",
    "wake": {"system": "porcupine", "porcupine": {"keyword_path": "jarvis.ppn", "sensitivity": 0.42}},
    "speech_to_text": {"system": "kaldi", "deepspeech": {"min_confidence": 0.25}, "kaldi": {"model_type": "nnet3"}},
    "mqtt": {"enabled": False, "host": "mqtt.example", "publish_intents": True},
    "intent": {"system": "fsticuffs"},
}

PLAYBOOK = """
- name: Run the rhasspy_asr profile tasks on this controller.
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Merge the settings into the profile.
      ansible.builtin.include_role:
        name: rhasspy_asr
        tasks_from: profile
"""

VARS = {
    "rhasspy_asr_model_files": {"tflite": "/opt/voice-appliance/models/current/output_graph.tflite",
                                "alphabet": "/opt/voice-appliance/models/current/alphabet.txt"},
    "rhasspy_asr_graph": "tflite",
    "rhasspy_asr_site_id": "kitchen",
    "voice_appliance_mqtt_port": 18830,
    "voice_appliance_mqtt_broker": "external",  # anonymous: no password file (test_role_gives_the_profile_its_password)
}


# --- the module's logic ---------------------------------------------------------------------------

def test_merge_keeps_other_keys_and_reports_changes() -> None:
    merged, changed = profile_module.merge(USER_PROFILE, {"speech_to_text": {"system": "hermes", "deepspeech": {"scorer": "/s"}},
                                                          "mqtt": {"enabled": True, "host": "mqtt.example"}})
    assert merged["wake"] == USER_PROFILE["wake"] and merged["intent"] == USER_PROFILE["intent"]
    assert merged["speech_to_text"]["kaldi"] == {"model_type": "nnet3"}
    assert merged["speech_to_text"]["deepspeech"] == {"min_confidence": 0.25, "scorer": "/s"}
    assert merged["mqtt"] == {"enabled": True, "host": "mqtt.example", "publish_intents": True}
    assert sorted(changed) == ["mqtt.enabled", "speech_to_text.deepspeech.scorer", "speech_to_text.system"]
    assert USER_PROFILE["speech_to_text"]["system"] == "kaldi"  # the input is not modified


def test_merge_counts_a_changed_type_as_a_change() -> None:
    _, changed = profile_module.merge({"mqtt": {"port": "1883"}}, {"mqtt": {"port": 1883}})
    assert changed == ["mqtt.port"]


@pytest.mark.bad_input
def test_merge_refuses_a_non_object_where_settings_need_one() -> None:
    with pytest.raises(profile_module.ProfileError, match=r"mqtt = \"on\", but it must be an object"):
        profile_module.merge({"mqtt": "on"}, {"mqtt": {"enabled": True}}, "p.json")


def test_run_writes_backup_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    original = json.dumps(USER_PROFILE, indent=2)
    path.write_text(original, encoding="utf-8")
    settings = {"speech_to_text": {"system": "hermes"}}
    first = profile_module.run(str(path), settings)
    assert first["changed"] and Path(first["backup_file"]).read_text(encoding="utf-8") == original
    assert json.loads(path.read_text(encoding="utf-8"))["speech_to_text"]["system"] == "hermes"
    text = path.read_text(encoding="utf-8")
    second = profile_module.run(str(path), settings)
    assert not second["changed"] and "backup_file" not in second and path.read_text(encoding="utf-8") == text


def test_run_in_check_mode_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    result = profile_module.run(str(path), {"mqtt": {"enabled": True}}, check=True)
    assert result["changed"] and not path.exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("text, message", [
    ('{"mqtt": {"enabled": true,}}', "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
])
def test_run_refuses_a_broken_profile_and_touches_nothing(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(profile_module.ProfileError, match=message):
        profile_module.run(str(path), {"mqtt": {"enabled": True}})
    assert path.read_text(encoding="utf-8") == text and sorted(os.listdir(str(tmp_path))) == ["profile.json"]


def test_a_password_from_a_file_makes_the_profile_and_its_backups_private(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(USER_PROFILE), encoding="utf-8")
    os.chmod(str(path), 0o644)
    for stamp in ("20200101T000000", "20210101T000000", "20220101T000000", "20230101T000000"):
        old = tmp_path / ("profile.json.bak-" + stamp)
        old.write_text('{"mqtt": {"password": "old-secret"}}', encoding="utf-8")
        os.chmod(str(old), 0o644)
    secret = tmp_path / "rhasspy.password"
    secret.write_text("s3cr3t-from-file\n", encoding="utf-8")
    result = profile_module.run(str(path), {"mqtt": {"enabled": True, "username": "rhasspy"}},
                                mqtt_password_file=str(secret), keep_backups=3)
    assert result["changed"] and "mqtt.password" in result["changed_keys"]
    assert json.loads(path.read_text(encoding="utf-8"))["mqtt"]["password"] == "s3cr3t-from-file"
    assert os.stat(str(path)).st_mode & 0o777 == 0o600
    backups = sorted(tmp_path.glob("profile.json.bak-*"))
    assert len(backups) == 3 and all(os.stat(str(b)).st_mode & 0o777 == 0o600 for b in backups)
    assert not (tmp_path / "profile.json.bak-20200101T000000").exists()
    # the diff never shows the password
    assert "s3cr3t-from-file" not in json.dumps(result) and "********" in result["diff"]["after"]
    again = profile_module.run(str(path), {"mqtt": {"enabled": True, "username": "rhasspy"}},
                               mqtt_password_file=str(secret), keep_backups=3)
    assert not again["changed"]


def test_a_missing_password_file_is_named_and_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(profile_module.ProfileError, match="Cannot read the MQTT password file %s" % (tmp_path / "nope")):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, mqtt_password_file=str(tmp_path / "nope"))
    assert path.read_text(encoding="utf-8") == "{}" and sorted(os.listdir(str(tmp_path))) == ["profile.json"]


def test_a_backup_is_not_written_through_a_planted_symlink(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{}", encoding="utf-8")
    victim = tmp_path / "victim"
    victim.write_text("untouched", encoding="utf-8")
    stamp = profile_module.time.strftime("%Y%m%dT%H%M%S")
    link = tmp_path / ("profile.json.bak-" + stamp)
    link.symlink_to(victim)
    try:
        profile_module.run(str(path), {"mqtt": {"enabled": True}})
    except OSError:
        pass  # refused (ELOOP), or the second changed meanwhile and the backup got a new name
    assert victim.read_text(encoding="utf-8") == "untouched"


def test_the_profile_directory_is_made_with_the_profile_and_then_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "profiles" / "de" / "profile.json"
    first = profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True)
    assert first["changed"] and first["settings_changed"] and first["directory_changes"] == ["created"]
    assert os.stat(str(path.parent)).st_mode & 0o7777 == 0o755 and json.loads(path.read_text())["mqtt"]["enabled"] is True
    again = profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True)
    assert not again["changed"] and again["directory_changes"] == []


def test_a_drifted_profile_directory_mode_is_repaired_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "de" / "profile.json"
    path.parent.mkdir()
    path.write_text("{}", encoding="utf-8")
    profile_module.run(str(path), {"mqtt": {"enabled": True}})
    os.chmod(str(path.parent), 0o777)
    planned = profile_module.run(str(path), {"mqtt": {"enabled": True}}, check=True, create_directory=True)
    assert planned["changed"] and planned["directory_changes"] == ["mode"] and os.stat(str(path.parent)).st_mode & 0o777 == 0o777
    done = profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True)
    assert done["directory_changes"] == ["mode"] and os.stat(str(path.parent)).st_mode & 0o7777 == 0o755
    # Rhasspy reads the same settings: the role does not ask for its restart.
    assert done["changed"] and not planned["settings_changed"] and not done["settings_changed"]


@pytest.mark.bad_input
def test_an_unknown_directory_owner_or_a_file_in_its_place_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "de" / "profile.json"
    with pytest.raises(profile_module.ProfileError, match="'no-such-account' is no account"):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True, directory_owner="no-such-account")
    assert not path.parent.exists()
    path.parent.write_text("not a directory", encoding="utf-8")
    with pytest.raises(profile_module.ProfileError, match="exists but is not a directory"):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True)


@pytest.mark.bad_input
def test_a_broken_profile_is_refused_before_its_directory_is_touched(tmp_path: Path) -> None:
    path = tmp_path / "de" / "profile.json"
    path.parent.mkdir(mode=0o700)
    os.chmod(str(path.parent), 0o700)
    path.write_text("{broken", encoding="utf-8")
    with pytest.raises(profile_module.ProfileError, match="not valid JSON"):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True)
    assert os.stat(str(path.parent)).st_mode & 0o7777 == 0o700 and path.read_text(encoding="utf-8") == "{broken"


# --- seed: files written into the profile's directory only when missing -------------------------------

SENTENCES = "[Test]\ndas ist ein test\n\n[Uhrzeit]\nwie spät ist es\n"


def _seed(content: str = SENTENCES, **extra: Any) -> Dict[str, Any]:
    return dict({"name": "sentences.ini", "content": content, "owner": "", "group": "", "mode": "0644"}, **extra)


def _account() -> Dict[str, Any]:
    """An owner and a group other than this process's when it may give them (root), else its own."""
    if os.geteuid() == 0:
        import grp
        import pwd
        nobody = pwd.getpwnam("nobody")
        return {"owner": "nobody", "group": grp.getgrgid(nobody.pw_gid).gr_name, "uid": nobody.pw_uid, "gid": nobody.pw_gid}
    return {"owner": str(os.geteuid()), "group": str(os.getegid()), "uid": os.geteuid(), "gid": os.getegid()}


def test_a_missing_seed_is_written_with_its_owner_group_and_mode_and_then_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "de" / "profile.json"
    who = _account()
    seed = [_seed(owner=who["owner"], group=who["group"], mode="0640")]
    first = profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True, seed=seed)
    ini = path.parent / "sentences.ini"
    assert first["changed"] and first["seeded"] == [str(ini)]
    assert ini.read_bytes() == SENTENCES.encode("utf-8")
    st = ini.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (who["uid"], who["gid"], 0o640)
    assert sorted(p.name for p in path.parent.iterdir()) == ["profile.json", "sentences.ini"], "a temporary file was left"
    assert first["seed_diff"] == [{"before": "", "after": SENTENCES, "before_header": str(ini), "after_header": str(ini)}]
    again = profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True, seed=seed)
    assert not again["changed"] and again["seeded"] == [] and again["seed_diff"] == []
    assert not profile_module.run(str(path), {"mqtt": {"enabled": True}}, check=True, create_directory=True, seed=seed)["changed"]


def test_the_seed_alone_is_a_change_and_the_settings_are_not(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    profile_module.run(str(path), {"mqtt": {"enabled": True}})
    result = profile_module.run(str(path), {"mqtt": {"enabled": True}}, seed=[_seed()])
    assert result["changed"] and not result["settings_changed"] and result["seeded"] == [str(tmp_path / "sentences.ini")]
    assert (tmp_path / "sentences.ini").stat().st_mode & 0o7777 == 0o644


@pytest.mark.parametrize("there", ["[Eigene]\nmach das licht aus\n", "", SENTENCES])
def test_a_seed_that_is_there_belongs_to_its_users_whatever_it_holds(tmp_path: Path, there: str) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{}", encoding="utf-8")
    ini = tmp_path / "sentences.ini"
    ini.write_text(there, encoding="utf-8")
    os.chmod(str(ini), 0o600)  # not the seed's mode: left alone too
    for check in (True, False):
        result = profile_module.run(str(path), {}, check=check, seed=[_seed(mode="0644")])
        assert not result["changed"] and result["seeded"] == [] and result["seed_diff"] == []
    assert ini.read_text(encoding="utf-8") == there and ini.stat().st_mode & 0o7777 == 0o600


def test_a_seed_behind_a_link_to_a_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{}", encoding="utf-8")
    own = tmp_path / "mine.ini"
    own.write_text("[Meins]\nhallo\n", encoding="utf-8")
    (tmp_path / "sentences.ini").symlink_to(own)
    assert profile_module.run(str(path), {}, seed=[_seed()])["seeded"] == []
    assert os.readlink(str(tmp_path / "sentences.ini")) == str(own) and own.read_text(encoding="utf-8") == "[Meins]\nhallo\n"


def test_check_mode_predicts_the_seed_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "profiles" / "de" / "profile.json"
    result = profile_module.run(str(path), {"mqtt": {"enabled": True}}, check=True, create_directory=True, seed=[_seed()])
    ini = str(path.parent / "sentences.ini")
    assert result["changed"] and result["seeded"] == [ini] and not (tmp_path / "profiles").exists()
    assert result["seed_diff"] == [{"before": "", "after": SENTENCES, "before_header": ini, "after_header": ini}]


def test_a_file_that_appears_before_the_seed_is_written_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    [want] = profile_module.plan_seeds(str(path), [_seed()])
    (tmp_path / "sentences.ini").write_text("[Gerade]\neben geschrieben\n", encoding="utf-8")  # a user, meanwhile
    assert profile_module.write_seed(want) is False
    assert (tmp_path / "sentences.ini").read_text(encoding="utf-8") == "[Gerade]\neben geschrieben\n"
    assert sorted(os.listdir(str(tmp_path))) == ["sentences.ini"], "the temporary file was removed"


@pytest.mark.bad_input
@pytest.mark.parametrize("seed, message", [
    ([_seed(name="../sentences.ini")], r"seed name '\.\./sentences\.ini' must be the name of a file in the profile's directory"),
    ([_seed(name="")], r"seed name '' must be the name of a file"),
    ([_seed(name="profile.json")], r"seed name 'profile\.json' must be .* not the profile itself"),
    ([_seed(), _seed()], r"seed sentences\.ini is given twice"),
    ([_seed(owner="no-such-account")], r"seed sentences\.ini: owner 'no-such-account' is no account on this machine; create it first"),
    ([_seed(group="no-such-group")], r"seed sentences\.ini: group 'no-such-group' is no group on this machine"),
    ([_seed(mode="rw-r--r--")], r"seed sentences\.ini: mode 'rw-r--r--' is not an octal mode such as \"0755\""),
    ([_seed(mode="17777")], r"mode '17777' is not an octal mode"),
])
def test_a_bad_seed_is_refused_naming_it_before_anything_changes(tmp_path: Path, seed: Any, message: str) -> None:
    path = tmp_path / "de" / "profile.json"
    with pytest.raises(profile_module.ProfileError, match=message):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, create_directory=True, seed=seed)
    assert not path.parent.exists()


@pytest.mark.bad_input
def test_a_dangling_link_or_a_directory_in_the_seeds_place_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{}", encoding="utf-8")
    ini = tmp_path / "sentences.ini"
    ini.symlink_to(tmp_path / "gone.ini")
    with pytest.raises(profile_module.ProfileError, match=r"seed sentences\.ini: .*sentences\.ini is a link to nothing; remove it"):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, seed=[_seed()])
    assert path.read_text(encoding="utf-8") == "{}" and os.path.islink(str(ini))
    ini.unlink()
    ini.mkdir()
    with pytest.raises(profile_module.ProfileError, match=r"exists but is not a regular file; move it away"):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, seed=[_seed()])
    assert path.read_text(encoding="utf-8") == "{}" and sorted(os.listdir(str(tmp_path))) == ["profile.json", "sentences.ini"]


def test_a_broken_profile_seeds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{broken", encoding="utf-8")
    with pytest.raises(profile_module.ProfileError, match="not valid JSON"):
        profile_module.run(str(path), {"mqtt": {"enabled": True}}, seed=[_seed()])
    assert sorted(os.listdir(str(tmp_path))) == ["profile.json"]


# --- the role's tasks ---------------------------------------------------------------------------

def _ansible_playbook() -> str:
    found = shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook")
    if not os.path.exists(found):
        pytest.fail("ansible-playbook not found: run the tests from the controller venv (make test)")
    return found


def _run_role(tmp_path: Path, profile: Path, check: bool = False, extra: Optional[Dict[str, Any]] = None,
              diff: bool = False) -> subprocess.CompletedProcess:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    variables = dict(VARS, rhasspy_asr_profile=str(profile), ansible_python_interpreter=sys.executable, **(extra or {}))
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    argv = ([_ansible_playbook(), "-i", "localhost,", str(playbook), "-e", json.dumps(variables)]
            + (["--check"] if check else []) + (["--diff", "-v"] if diff else []))
    return subprocess.run(argv, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)


def _stats(result: subprocess.CompletedProcess) -> Dict[str, Any]:
    return json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{"):])[0]["stats"]["localhost"]


def test_role_keeps_the_users_keys(tmp_path: Path) -> None:
    profile = tmp_path / "profiles" / "de" / "profile.json"
    profile.parent.mkdir(parents=True)
    profile.write_text(json.dumps(USER_PROFILE, indent=2), encoding="utf-8")
    result = _run_role(tmp_path, profile)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    merged = json.loads(profile.read_text(encoding="utf-8"))
    for key in ("language", "wake", "intent"):
        assert merged[key] == USER_PROFILE[key]
    assert merged["speech_to_text"]["system"] == "hermes"
    assert merged["speech_to_text"]["kaldi"] == USER_PROFILE["speech_to_text"]["kaldi"]
    assert merged["speech_to_text"]["deepspeech"]["min_confidence"] == 0.25
    assert merged["speech_to_text"]["deepspeech"]["acoustic_model"] == VARS["rhasspy_asr_model_files"]["tflite"]
    assert merged["mqtt"] == {"enabled": True, "host": "127.0.0.1", "port": 18830, "site_id": "kitchen", "publish_intents": True}
    backups = sorted(profile.parent.glob("profile.json.bak-*"))
    assert len(backups) == 1 and json.loads(backups[0].read_text(encoding="utf-8")) == USER_PROFILE
    # The role's sentences.ini, seeded byte for byte (its last newline too), mode 0644, in the profile's one call.
    seeded = profile.parent / "sentences.ini"
    assert seeded.read_bytes() == (REPO / "roles" / "rhasspy_asr" / "files" / "sentences.ini").read_bytes()
    assert seeded.stat().st_mode & 0o7777 == 0o644 and (seeded.stat().st_uid, seeded.stat().st_gid) == (os.geteuid(), os.getegid())
    assert "so that it reads the new settings" in result.stdout  # the handler asks for Rhasspy's restart
    # Again, and in check mode: nothing changes.
    assert _stats(_run_role(tmp_path, profile))["changed"] == 0
    assert _stats(_run_role(tmp_path, profile, check=True))["changed"] == 0
    # A repaired directory mode is a change, but Rhasspy reads the same settings: no restart asked for.
    os.chmod(str(profile.parent), 0o777)
    repaired = _run_role(tmp_path, profile)
    assert _stats(repaired)["changed"] == 1 and os.stat(str(profile.parent)).st_mode & 0o777 == 0o755
    assert "so that it reads the new settings" not in repaired.stdout


def test_role_gives_the_profile_its_password_and_hides_it_in_the_diff(tmp_path: Path) -> None:
    profile = tmp_path / "profiles" / "de" / "profile.json"
    profile.parent.mkdir(parents=True)
    profile.write_text(json.dumps(USER_PROFILE, indent=2), encoding="utf-8")
    os.chmod(str(profile), 0o644)
    secrets_dir = tmp_path / "mqtt"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "rhasspy.password").write_text("pw-in-a-file-only\n", encoding="utf-8")
    extra = {"voice_appliance_mqtt_broker": "local", "voice_appliance_mqtt_secret_dir": str(secrets_dir)}
    result = _run_role(tmp_path, profile, extra=extra, diff=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    merged = json.loads(profile.read_text(encoding="utf-8"))
    assert merged["mqtt"]["username"] == "rhasspy" and merged["mqtt"]["password"] == "pw-in-a-file-only"
    assert os.stat(str(profile)).st_mode & 0o777 == 0o600
    assert "pw-in-a-file-only" not in result.stdout + result.stderr
    assert "********" in result.stdout  # the diff was shown, redacted


def test_role_stops_on_invalid_json_and_touches_nothing(tmp_path: Path) -> None:
    profile = tmp_path / "profiles" / "de" / "profile.json"
    profile.parent.mkdir(parents=True)
    broken = '{\n  "language": "de",\n  "mqtt": {"enabled": true\n}\n'
    profile.write_text(broken, encoding="utf-8")
    result = _run_role(tmp_path, profile)
    assert result.returncode != 0
    assert "The Rhasspy profile {} is not valid JSON".format(profile) in result.stdout
    assert "Nothing was changed" in result.stdout
    assert profile.read_text(encoding="utf-8") == broken
    assert sorted(p.name for p in profile.parent.iterdir()) == ["profile.json"]  # no backup, no sentences.ini


def test_role_seeds_sentences_ini_only_when_asked_and_check_mode_shows_it(tmp_path: Path) -> None:
    profile = tmp_path / "profiles" / "de" / "profile.json"
    predicted = _run_role(tmp_path, profile, check=True, diff=True)
    assert predicted.returncode == 0, predicted.stdout[-3000:] + predicted.stderr
    assert not (tmp_path / "profiles").exists(), "check mode wrote something"
    report = json.JSONDecoder().raw_decode(predicted.stdout[predicted.stdout.index("{"):])[0]
    [task] = [t for t in report["plays"][0]["tasks"]
              if t["task"]["name"].startswith("rhasspy_asr : Merge the speech-to-text")]
    result = task["hosts"]["localhost"]
    assert result["changed"] and result["seeded"] == [str(profile.parent / "sentences.ini")]
    assert any(d.get("after_header") == str(profile.parent / "sentences.ini") and "[Licht]" in d["after"] for d in result["diff"])
    # rhasspy_asr_seed_sentences false: the profile alone, no sentences.ini.
    done = _run_role(tmp_path, profile, extra={"rhasspy_asr_seed_sentences": False})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert sorted(p.name for p in profile.parent.iterdir()) == ["profile.json"]
