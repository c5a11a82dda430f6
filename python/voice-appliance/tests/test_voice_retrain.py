"""voice-retrain with real rhasspy-nlu and real KenLM binaries (built once, see conftest)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from voice_testlib import DATA
from voice_appliance import retrain, scorer
from voice_appliance.retrain import RetrainError

SENTENCES = """\
# Befehle für das Gerät

[Licht]
ort = (wohnzimmer | küche | bad){ort}
schalte das licht im <ort> (ein | aus){zustand}
mach das licht [im <ort>] aus

[Timer]
stelle einen timer auf (1..5){minuten} minuten
"""

VERIFY = "das ist ein test"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def setup(tmp_path: Path, kenlm_bin: Path) -> Dict[str, Any]:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    alphabet = model_dir / "alphabet.txt"
    alphabet.write_bytes((DATA / "de_commands" / "alphabet.txt").read_bytes())
    base = model_dir / "kenlm.scorer"  # stands in for the German base scorer
    base.write_bytes((DATA / "de_5k" / "reference.scorer").read_bytes())
    sentences = tmp_path / "sentences.ini"
    sentences.write_text(SENTENCES, encoding="utf-8")
    wav = tmp_path / "check.wav"
    wav.write_bytes(b"RIFF")  # only passed through to the verification command
    # Only read for the alphabet check (the verification command above does not load it): a
    # stand-in holding the alphabet the way a 0.7.4 model embeds it (metadata_alphabet).
    (model_dir / "output_graph.tflite").write_bytes(
        b"\0\0\0\0TFL3" + b"\x01" * 100 + scorer.serialize_alphabet(scorer.read_alphabet(alphabet))
        + b"\x02" * 100)
    # Verification that really reads the new scorer: every word of the expected sentence must be
    # in its vocabulary (the decoding check with a real model is test_end_to_end below).
    verify_command = [sys.executable, "-c",
                      "import sys; sys.path.insert(0, %r); from voice_appliance.scorer import "
                      "main; sys.exit(main(sys.argv[1:]))" % str(PACKAGE_ROOT),
                      "inspect", "{scorer}", "--alphabet", str(alphabet), "--spell", VERIFY]
    config = retrain.load_config(None, {
        "sentences": [str(sentences)], "alphabet": str(alphabet), "base_scorer": str(base),
        "output_scorer": str(model_dir / "generated.scorer"), "kenlm_bin_dir": str(kenlm_bin),
        "model": str(model_dir / "output_graph.tflite"), "verify_audio": str(wav),
        "verify_transcript": VERIFY, "verify_command": verify_command,
    })
    return {"config": config, "base": base, "base_sha": sha(base), "dir": model_dir,
            "target": model_dir / "generated.scorer", "sentences": sentences,
            "alphabet": alphabet, "tmp": tmp_path, "kenlm": kenlm_bin}


def quiet(_msg: str) -> None:
    pass


def expected_words() -> set:
    places = {"wohnzimmer", "küche", "bad"}
    words = {"schalte", "das", "licht", "im", "ein", "aus", "mach", "stelle", "einen", "timer",
             "auf", "minuten", "eins", "zwei", "drei", "vier", "fünf"} | places
    return words | set(VERIFY.split())


def test_builds_verifies_and_installs(setup):
    summary = retrain.run(setup["config"], log=quiet)
    target = setup["target"]
    assert summary["changed"] is True
    assert summary["sentences"] == 3 * 2 + (1 + 3) + 5
    info = scorer.read_scorer(target)
    alphabet = scorer.read_alphabet(setup["alphabet"])
    assert set(scorer.words_of(info, alphabet)) == expected_words()
    assert (info.alpha, info.beta) == (scorer.float32(0.75), scorer.float32(1.85))  # from base
    assert sha(setup["base"]) == setup["base_sha"]
    assert sorted(os.listdir(str(setup["dir"]))) == [
        ".generated.scorer.inputs.json", ".generated.scorer.lock", "alphabet.txt",
        "generated.scorer", "kenlm.scorer", "output_graph.tflite"]
    # Same sentences again: nothing to do, nothing touched.
    mtime = target.stat().st_mtime_ns
    assert retrain.run(setup["config"], log=quiet)["changed"] is False
    assert target.stat().st_mtime_ns == mtime
    # New sentences: the old generated scorer becomes .previous.
    old = target.read_bytes()
    setup["sentences"].write_text(SENTENCES + "\n[Musik]\nspiel musik\n", encoding="utf-8")
    assert retrain.run(setup["config"], log=quiet)["changed"] is True
    assert (setup["dir"] / "generated.scorer.previous").read_bytes() == old
    assert "musik" in scorer.words_of(scorer.read_scorer(target), alphabet)
    # Roll back.
    retrain.rollback(setup["config"], log=quiet)
    assert target.read_bytes() == old
    assert sha(setup["base"]) == setup["base_sha"]


def _install_first(setup) -> bytes:
    retrain.run(setup["config"], log=quiet)
    return setup["target"].read_bytes()


def _assert_untouched(setup, before: bytes) -> None:
    assert setup["target"].read_bytes() == before
    assert sha(setup["base"]) == setup["base_sha"]
    leftovers = [n for n in os.listdir(str(setup["dir"])) if n.endswith((".staged", ".tmp"))]
    assert leftovers == []


def _wrapper(tmp: Path, name: str, body: str) -> str:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


@pytest.mark.fault
@pytest.mark.parametrize("stage", ["sentences", "alphabet", "lmplz", "filter", "build_binary",
                                   "package", "verify", "reload"])
def test_failure_at_each_stage_leaves_previous_scorer_untouched(setup, stage):
    before = _install_first(setup)
    config = dict(setup["config"])
    real_bb = str(setup["kenlm"] / "build_binary")
    codes = {"sentences": 3, "alphabet": 4, "lmplz": 5, "filter": 5, "build_binary": 5,
             "package": 6, "verify": 7, "reload": 8}
    message = {
        "sentences": r"sentences\.ini:6: the group '\(' at column 10 is never closed",
        "alphabet": r"'café': 'é' not in the alphabet — from .*sentences\.ini:6",
        "lmplz": r"lmplz .* failed with exit code",
        "filter": r"filter.* failed with exit code 3",
        "build_binary": r"/bb -S 64M .* failed with exit code 4$",
        "package": r"vocabulary strings included .*`build_binary -v trie",
        "verify": r"decoded .* as 'das ist ein test', expected 'das ist kein test'",
        "reload": r"^\[install\] false failed with exit code 1; the previous scorer was put back$",
    }[stage]
    if stage == "sentences":
        setup["sentences"].write_text(SENTENCES.replace("mach das licht [im <ort>] aus",
                                                        "mach das (licht [im <ort>] aus"))
    elif stage == "alphabet":
        setup["sentences"].write_text(SENTENCES.replace("mach das licht", "mach das café"))
    else:
        setup["sentences"].write_text(SENTENCES + "\n[Neu]\nneuer satz\n", encoding="utf-8")
    if stage == "lmplz":
        config["memory"] = "lots"  # lmplz rejects the size
    elif stage == "filter":
        config["filter"] = _wrapper(setup["tmp"], "filter", "exit 3\n")
    elif stage == "build_binary":
        config["build_binary"] = _wrapper(setup["tmp"], "bb", "exit 4\n")
    elif stage == "package":  # a real build_binary, but without -v: the packager must refuse
        config["build_binary"] = _wrapper(
            setup["tmp"], "bb_no_v",
            'for a; do shift; [ "$a" = -v ] || set -- "$@" "$a"; done\nexec %s "$@"\n' % real_bb)
    elif stage == "verify":
        config["verify_transcript"] = "das ist kein test"  # the command prints VERIFY
    elif stage == "reload":
        config["reload_command"] = ["false"]
    with pytest.raises(RetrainError, match=message) as err:
        retrain.run(config, log=quiet)
    assert err.value.code == codes[stage]
    _assert_untouched(setup, before)


@pytest.mark.fault
def test_verification_command_failure_is_a_verify_error(setup):
    before = _install_first(setup)
    setup["sentences"].write_text(SENTENCES + "\n[Neu]\nneuer satz\n", encoding="utf-8")
    config = dict(setup["config"], add_verify_transcript=False)  # "test" not in the vocabulary
    with pytest.raises(RetrainError, match=r"\[verify\] .* failed with exit code 1") as err:
        retrain.run(config, log=quiet)
    assert err.value.code == 7
    _assert_untouched(setup, before)


@pytest.mark.fault
def test_reload_failure_without_previous_removes_new_scorer(setup):
    config = dict(setup["config"], reload_command=["sh", "-c", "exit 9"])
    with pytest.raises(RetrainError, match="exit code 9.*the new scorer was removed"):
        retrain.run(config, log=quiet)
    assert not setup["target"].exists()
    assert sha(setup["base"]) == setup["base_sha"]


def test_reload_command_runs_after_the_swap(setup):
    marker = setup["tmp"] / "reloaded"
    config = dict(setup["config"], reload_command=[
        "sh", "-c", 'test -s "$1" && echo ok > "$2"', "reload", str(setup["target"]), str(marker)])
    retrain.run(config, log=quiet)
    assert marker.read_text() == "ok\n"


@pytest.mark.bad_input
def test_output_must_not_be_the_base_scorer(setup):
    config = dict(setup["config"], output_scorer=str(setup["base"]))
    with pytest.raises(RetrainError, match="is the base scorer") as err:
        retrain.run(config, log=quiet)
    assert err.value.code == 2
    link = setup["dir"] / "alias.scorer"
    os.symlink(str(setup["base"]), str(link))
    with pytest.raises(RetrainError, match="is the base scorer"):
        retrain.run(dict(setup["config"], output_scorer=str(link)), log=quiet)
    assert sha(setup["base"]) == setup["base_sha"]


def test_config_file_and_cli(setup, capsys):
    config_path = setup["tmp"] / "retrain.json"
    data = {k: v for k, v in setup["config"].items() if v != retrain.OPTIONS[k]}
    data["_comment"] = "written by Ansible"
    config_path.write_text(json.dumps(data), encoding="utf-8")
    assert retrain.main(["--config", str(config_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["changed"] is True and summary["sentences"] == 15
    assert retrain.main(["--config", str(config_path)]) == 0
    assert capsys.readouterr().out.startswith("unchanged: ")
    assert retrain.main(["--config", str(config_path), "--dry-run"]) == 0
    corpus = capsys.readouterr().out.splitlines()
    assert "stelle einen timer auf fünf minuten" in corpus and corpus[-1] == VERIFY
    bad = setup["tmp"] / "bad.json"
    bad.write_text(json.dumps(dict(data, colour="red")), encoding="utf-8")
    assert retrain.main(["--config", str(bad)]) == 2
    assert "unknown option 'colour'" in capsys.readouterr().err
    assert retrain.main(["--config", str(config_path), "--order", "9"]) == 2
    assert retrain.main(["--config", str(config_path), "--rollback"]) == 8  # no .previous yet
    assert "nothing to roll back to" in capsys.readouterr().err


@pytest.mark.bad_input
def test_missing_inputs_are_config_errors_naming_the_option(setup):
    for key, value in (("alphabet", "/nonexistent/alphabet.txt"), ("sentences", ["/no/s.ini"]),
                       ("verify_audio", "/no/check.wav"), ("slots_dirs", ["/no/slots"])):
        with pytest.raises(RetrainError, match="^\\[config\\] %s: /no" % key) as err:
            retrain.run(dict(setup["config"], **{key: value}), log=quiet)
        assert err.value.code == 2


@pytest.mark.bad_input
def test_alphabet_must_be_the_models(setup):
    model = Path(setup["config"]["model"])
    other = setup["tmp"] / "other_alphabet.txt"
    other.write_text(setup["alphabet"].read_text(encoding="utf-8").replace("ü\n", "ü\nß\n"),
                     encoding="utf-8")
    with pytest.raises(RetrainError, match=r"\(32 labels\) is not the alphabet embedded in the "
                                           r"model .*output_graph\.tflite") as err:
        retrain.run(dict(setup["config"], alphabet=str(other)), log=quiet, dry_run=True)
    assert err.value.code == 4
    model.write_bytes(model.read_bytes()[:-120])  # cut into the embedded alphabet
    with pytest.raises(RetrainError, match="is not the alphabet embedded"):
        retrain.run(setup["config"], log=quiet, dry_run=True)
    assert retrain.run(dict(setup["config"], check_model_alphabet=False), log=quiet,
                       dry_run=True)["sentences"] == 15


@pytest.mark.bad_input
def test_missing_verification_settings_are_config_errors(setup):
    with pytest.raises(RetrainError, match="'verify_audio' is required .* verify to false"):
        retrain.load_config(None, {"sentences": ["s.ini"], "alphabet": "a", "output_scorer": "o",
                                   "model": "m"})
    config = retrain.load_config(None, {"sentences": "s.ini", "alphabet": "a",
                                        "output_scorer": "o", "verify": False})
    assert config["sentences"] == ["s.ini"] and config["transliterate"] == {"ß": "ss"}


def test_transliteration_and_number_words(setup):
    setup["sentences"].write_text("[Timer]\nwarte (29..31) minuten\nschließe die tür\n",
                                  encoding="utf-8")
    config = dict(setup["config"], add_verify_transcript=False, verify=False)
    summary = retrain.run(config, log=quiet, dry_run=True)
    assert summary["corpus"] == ["warte neunundzwanzig minuten", "warte dreissig minuten",
                                 "warte einunddreissig minuten", "schliesse die tür"]
    config["transliterate"] = {}
    with pytest.raises(RetrainError, match=r"'dreißig': 'ß' not in the alphabet — generated .*\n"
                                           r".*'einunddreißig'.*\n.*'schließe'.*sentences\.ini:3"):
        retrain.run(config, log=quiet, dry_run=True)


# --- coalescing by content, the lock, the status ------------------------------------------------

def test_unchanged_inputs_end_the_run_without_building(setup):
    calls = []
    verifier = retrain.command_verifier(setup["config"])

    def counting(path: Path) -> str:
        calls.append(path)
        return verifier(path)

    assert retrain.run(setup["config"], verifier=counting, log=quiet)["passes"] == 1
    summary = retrain.run(setup["config"], verifier=counting, log=quiet)
    assert (summary["passes"], summary["changed"], len(calls)) == (0, False, 1), summary
    assert summary["sha256"] == sha(setup["target"])
    # The `current` link moved to another model version: another input, so it builds again.
    other = setup["tmp"] / "model-2"
    other.mkdir()
    (other / "output_graph.tflite").write_bytes(Path(setup["config"]["model"]).read_bytes())
    link = setup["tmp"] / "current"
    os.symlink(str(setup["dir"]), str(link))
    config = dict(setup["config"], model=str(link / "output_graph.tflite"))
    assert retrain.run(config, verifier=counting, log=quiet)["passes"] == 1  # another option
    assert retrain.run(config, verifier=counting, log=quiet)["passes"] == 0
    os.unlink(str(link))
    os.symlink(str(other), str(link))
    assert retrain.run(config, verifier=counting, log=quiet)["passes"] == 1


@pytest.mark.fault
def test_an_edit_saved_during_a_build_is_built_before_the_run_ends(setup):
    """The edit lands while the first build verifies: the run builds again from what is on disk."""
    verifier = retrain.command_verifier(setup["config"])
    edits = [SENTENCES + "\n[Radio]\nschalte das radio ein\n"]
    messages = []

    def editing(path: Path) -> str:
        if edits:
            setup["sentences"].write_text(edits.pop(), encoding="utf-8")
        return verifier(path)

    summary = retrain.run(setup["config"], verifier=editing, log=messages.append)
    assert summary["passes"] == 2, messages
    assert "the inputs changed during this build: building again from what is on disk now" in messages
    words = scorer.words_of(scorer.read_scorer(setup["target"]), scorer.read_alphabet(setup["alphabet"]))
    assert "radio" in words
    assert retrain.status(setup["config"])["state"] == "up to date"


@pytest.mark.fault
def test_inputs_that_never_settle_stop_after_max_passes(setup):
    verifier = retrain.command_verifier(setup["config"])
    count = [0]
    messages = []

    def editing(path: Path) -> str:
        count[0] += 1
        setup["sentences"].write_text(SENTENCES + "\n[N]\nnummer %s\n" % ("eins " * count[0]),
                                      encoding="utf-8")
        return verifier(path)

    summary = retrain.run(dict(setup["config"], max_passes=3), verifier=editing, log=messages.append)
    assert summary["passes"] == 3 and count[0] == 3
    assert any("still changing after 3 builds" in m for m in messages), messages
    assert retrain.status(setup["config"])["code"] == retrain.STATUS_DUE


@pytest.mark.fault
def test_a_run_waits_for_the_lock_and_times_out_with_the_fix(setup):
    import fcntl
    import threading

    lock = setup["dir"] / ".generated.scorer.lock"
    handle = lock.open("a")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    with pytest.raises(RetrainError, match=r"still holds .*\.generated\.scorer\.lock after 0 s; "
                                           r"raise lock_timeout") as err:
        retrain.run(dict(setup["config"], lock_timeout=0.3), log=quiet)
    assert err.value.code == 8 and not setup["target"].exists()
    messages = []
    threading.Timer(1.0, handle.close).start()  # the other run ends after a second
    summary = retrain.run(setup["config"], log=messages.append)
    assert summary["changed"] is True and summary["seconds"] >= 0.9
    assert any(m.startswith("waiting for another run to finish") for m in messages), messages


def test_status_says_due_up_to_date_or_failed(setup, capsys):
    config_path = setup["tmp"] / "retrain.json"
    data = {k: v for k, v in setup["config"].items() if v != retrain.OPTIONS[k]}
    config_path.write_text(json.dumps(data), encoding="utf-8")
    status = ["--config", str(config_path), "--status"]
    stamp = setup["tmp"] / "state" / ".voice-retrain.due"
    stamp.parent.mkdir()
    assert retrain.main(status + ["--due-stamp", str(stamp)]) == retrain.STATUS_DUE
    assert capsys.readouterr().out.startswith("due: ")
    assert stamp.is_file(), "a due run is signalled through the stamp"
    stamp.unlink()
    assert retrain.main(["--config", str(config_path)]) == 0
    assert retrain.main(status + ["--due-stamp", str(stamp)]) == retrain.STATUS_UP_TO_DATE
    assert not stamp.exists(), "nothing due, nothing signalled"
    os.symlink(str(setup["tmp"] / "elsewhere"), str(stamp))
    setup["sentences"].write_text(SENTENCES + "\n[X]\nneues wort\n", encoding="utf-8")
    assert retrain.main(status + ["--due-stamp", str(stamp)]) == 2  # never through a symlink
    assert "cannot touch" in capsys.readouterr().err and not (setup["tmp"] / "elsewhere").exists()
    stamp.unlink()
    setup["sentences"].write_text(SENTENCES, encoding="utf-8")
    capsys.readouterr()
    assert retrain.main(status + ["--json"]) == retrain.STATUS_UP_TO_DATE
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "up to date" and report["sha256"] == sha(setup["target"])
    # A refused edit: failed (not retried by itself), the installed scorer untouched.
    before = setup["target"].read_bytes()
    setup["sentences"].write_text("[Licht]\nschalte (das licht an\n", encoding="utf-8")
    assert retrain.main(["--config", str(config_path)]) == 3
    assert retrain.main(status) == retrain.STATUS_FAILED
    assert capsys.readouterr().out.startswith("failed: sentences: ")
    assert setup["target"].read_bytes() == before
    # Put back: the installed scorer was built from exactly this, so nothing is due.
    setup["sentences"].write_text(SENTENCES, encoding="utf-8")
    assert retrain.main(status) == retrain.STATUS_UP_TO_DATE
    # A scorer replaced behind voice-retrain's back is not "up to date".
    setup["target"].write_bytes(before + b"x")
    assert retrain.main(status) == retrain.STATUS_DUE


@pytest.mark.fault
def test_an_interrupted_run_is_not_retried_by_itself(setup):
    before = _install_first(setup)
    setup["sentences"].write_text(SENTENCES + "\n[Neu]\nneuer satz\n", encoding="utf-8")

    def killed(path: Path) -> str:
        raise KeyboardInterrupt  # stands in for SIGKILL: nothing after this line runs

    with pytest.raises(KeyboardInterrupt):
        retrain.run(setup["config"], verifier=killed, log=quiet)
    _assert_untouched(setup, before)
    result = retrain.status(setup["config"])
    assert (result["state"], result["code"]) == ("running", retrain.STATUS_FAILED), result


@pytest.mark.fault
def test_a_rolled_back_scorer_is_not_rebuilt_by_itself(setup):
    first = _install_first(setup)
    setup["sentences"].write_text(SENTENCES + "\n[Neu]\nneuer satz\n", encoding="utf-8")
    retrain.run(setup["config"], log=quiet)
    retrain.rollback(setup["config"], log=quiet)
    assert setup["target"].read_bytes() == first
    assert retrain.status(setup["config"])["state"] == "rolled back"


@pytest.mark.bad_input
@pytest.mark.parametrize("key,value,message", [
    ("max_passes", 0, "max_passes must be at least 1, got 0"),
    ("lock_timeout", -1, "lock_timeout must be 0 or more seconds, got -1"),
    ("lock_timeout", "soon", "option 'lock_timeout' must be float, got 'soon'"),
])
def test_bad_coalescing_options_are_named(setup, key, value, message):
    with pytest.raises(RetrainError, match=message) as err:
        retrain.load_config(None, dict(setup["config"], **{key: value}))
    assert err.value.code == 2


def test_rhasspy_training_sentences_and_sentences_ini_make_one_vocabulary(setup):
    """Two sources, one scorer: what a Rhasspy training request stored and sentences.ini are read
    together by every build, so neither replaces the other's vocabulary, whichever came last."""
    alphabet = scorer.read_alphabet(setup["alphabet"])

    def words() -> set:
        return set(scorer.words_of(scorer.read_scorer(setup["target"]), alphabet))

    retrain.run(setup["config"], log=quiet)
    assert words() == expected_words()
    stored = retrain.store_rhasspy_sentences(setup["config"], "[Wetter]\nwie ist das wetter\n")
    assert stored == setup["dir"] / "rhasspy-sentences.ini"
    assert retrain.status(setup["config"])["state"] == "due", "Rhasspy's sentences are an input"
    retrain.run(setup["config"], log=quiet)
    assert words() == expected_words() | {"wie", "wetter"}
    # Then the user edits sentences.ini: Rhasspy's words stay.
    setup["sentences"].write_text(SENTENCES + "\n[Musik]\nspiel musik\n", encoding="utf-8")
    retrain.run(setup["config"], log=quiet)
    assert words() == expected_words() | {"wie", "wetter", "spiel", "musik"}
    # A new training request replaces Rhasspy's sentences, and only those.
    retrain.store_rhasspy_sentences(setup["config"], "[Wetter]\nwie warm ist es\n")
    retrain.run(setup["config"], log=quiet)
    assert words() == expected_words() | {"wie", "warm", "es", "spiel", "musik"}
    assert [p.name for p in setup["dir"].iterdir() if p.name.endswith(".tmp")] == []


def test_rhasspy_sentences_default_beside_the_output_scorer_and_can_be_set(setup, tmp_path):
    assert setup["config"]["rhasspy_sentences"] == str(setup["dir"] / "rhasspy-sentences.ini")
    config = retrain.load_config(None, dict(
        {k: setup["config"][k] for k in ("sentences", "alphabet", "output_scorer", "model", "verify_audio",
                                         "verify_transcript")}, rhasspy_sentences=str(tmp_path / "r.ini")))
    assert retrain.sentence_files(config) == setup["config"]["sentences"], "no file yet: not read"
    (tmp_path / "r.ini").write_text("[A]\nhallo\n", encoding="utf-8")
    assert retrain.sentence_files(config) == setup["config"]["sentences"] + [str(tmp_path / "r.ini")]
