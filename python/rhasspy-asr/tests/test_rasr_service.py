"""The real rhasspy-asr-deepspeech-hermes service (patched wheels, compat deepspeech with the
official libdeepspeech 0.7.4) against a real Mosquitto: start-up refusals, MQTT plumbing,
training through voice-retrain, and — with the fixture model — transcription before and after
training."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import rasr_support as support

SITE = "default"
SENTENCES = """\
[Test]
(das ist | ist das) ein test

[Licht]
geraet = (licht | lampe){geraet}
schalte das <geraet> (an | aus | ein:an){zustand}

[Fragen]
wie spät ist es
wie [viel] uhr ist es
"""
# Spoken words of SENTENCES (what the generated scorer must hold).
SENTENCE_WORDS = {"das", "ist", "ein", "test", "schalte", "licht", "lampe", "an", "aus", "wie", "spät",
                  "es", "viel", "uhr"}

MAKE_GRAPH = """
import sys
import rhasspynlu
from rhasspynlu import ini_jsgf
with open(sys.argv[1], encoding="utf-8") as handle:
    intents = rhasspynlu.parse_ini(handle.read())
sentences, replacements = ini_jsgf.split_rules(intents)
graph = rhasspynlu.intents_to_graph(sentences, replacements)
with open(sys.argv[2], "wb") as out:
    rhasspynlu.graph_to_gzip_pickle(graph, out)
"""

SCORER_WORDS = """
import json, sys
from voice_appliance import scorer
info = scorer.read_scorer(sys.argv[1])
print(json.dumps(sorted(scorer.words_of(info, scorer.read_alphabet(sys.argv[2])))))
"""


class Setup(object):
    """Model directory with the base scorer, the voice-retrain configuration, the graph."""

    def __init__(self, tmp: Path, venv: support.Venv, kenlm_bin: Path,
                 model: Optional[Dict[str, Any]] = None) -> None:
        self.venv = venv
        self.dir = tmp / "model"
        self.dir.mkdir()
        self.base = self.dir / "kenlm.scorer"
        shutil.copy(str(support.BASE_SCORER_DATA / "reference.scorer"), str(self.base))
        self.base_sha = support.sha256(self.base)
        self.generated = self.dir / "generated.scorer"
        if model:
            self.model, self.alphabet = Path(model["model"]), Path(model["alphabet"])
            config: Dict[str, Any] = {"model": str(self.model), "verify_audio": str(model["wav"]),
                                      "verify_transcript": model["transcript"]}
        else:
            # Training only: a model file that is never loaded, no verification decode.
            self.model, self.alphabet = self.dir / "output_graph.tflite", support.BASE_SCORER_DATA / "alphabet.txt"
            self.model.write_bytes(b"not a model")
            config = {"verify": False, "check_model_alphabet": False}
        # The user's own sentences.ini (a part of SENTENCES): training adds Rhasspy's to it.
        self.sentences = tmp / "sentences.ini"
        self.sentences.write_text("[Test]\n(das ist | ist das) ein test\n", encoding="utf-8")
        config.update({"_comment": "test", "sentences": [str(self.sentences)],
                       "alphabet": str(self.alphabet), "output_scorer": str(self.generated),
                       "kenlm_bin_dir": str(kenlm_bin), "work_dir": str(tmp)})
        self.config = tmp / "retrain.json"
        self.config.write_text(json.dumps(config, indent=1), encoding="utf-8")
        self.tmp = tmp

    def graph(self, text: str, name: str = "intent_graph.pickle.gz") -> Path:
        ini = self.tmp / (name + ".ini")
        ini.write_text(text, encoding="utf-8")
        out = self.tmp / name
        self.venv.run(MAKE_GRAPH, str(ini), str(out))
        return out

    def args(self, *extra: str) -> List[str]:
        # The graphs are written to tmp: the profile directory training requests may read from
        return ["--model", str(self.model), "--scorer", str(self.base), "--retrain-config", str(self.config),
                "--profile-dir", str(self.tmp)] + list(extra)

    def words(self, scorer: Path) -> List[str]:
        return json.loads(self.venv.run(SCORER_WORDS, str(scorer), str(self.alphabet)).stdout)


# systemd's PATH: the service must find the venv's deepspeech CLI for the verification by itself.
SERVICE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONWARNINGS": "error::RuntimeWarning"}


def service(venv: support.Venv, broker: support.Broker, args: List[str]) -> support.Service:
    return support.Service(venv, broker, args, env=SERVICE_ENV)


def train(hermes: support.Hermes, graph: Path, train_id: str, timeout: float = 120,
          graph_format: str = "pickle-gzip") -> Dict[str, Any]:
    """Publish rhasspy/asr/<site>/train; return trainSuccess's or the error's payload (+ topic)."""
    since = hermes.mark()
    hermes.publish("rhasspy/asr/%s/train" % SITE, {"id": train_id, "graph_path": str(graph),
                                                  "graph_format": graph_format})
    topic, payload = hermes.wait_for(
        lambda t, p: (t == "rhasspy/asr/%s/trainSuccess" % SITE and p.get("id") == train_id)
        or (t == "hermes/error/asr" and p.get("sessionId") == train_id),
        timeout, "trainSuccess or error for %s" % train_id, since)
    return dict(payload, topic=topic)


# --- start-up --------------------------------------------------------------------------------------

@pytest.mark.bad_input
def test_startup_refusals_name_the_bad_value(asr_venv, broker, kenlm_bin, tmp_path) -> None:
    setup = Setup(tmp_path, asr_venv, kenlm_bin)
    same = tmp_path / "same.json"
    same.write_text(json.dumps({"alphabet": str(setup.alphabet), "output_scorer": str(setup.base),
                                "verify": False}), encoding="utf-8")
    cases = [
        (["--model", str(tmp_path / "missing.tflite")], "--model %s does not exist" % (tmp_path / "missing.tflite")),
        (["--model", str(setup.model), "--scorer", str(tmp_path / "nope.scorer")],
         "--scorer %s does not exist" % (tmp_path / "nope.scorer")),
        (setup.args("--base-language-model-weight", "0.5"), "--base-language-model-weight 0.5: mixing"),
        (["--model", str(setup.model), "--scorer", str(setup.base), "--retrain-config", str(same)],
         "is the base scorer --scorer %s: training would overwrite the base scorer" % setup.base),
        (["--model", str(setup.model), "--retrain-config", str(tmp_path / "none.json")],
         "--retrain-config %s does not exist" % (tmp_path / "none.json")),
        (["--model", str(setup.model), "--profile-dir", str(setup.model)],
         "--profile-dir %s is not a directory" % setup.model),
    ]
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps({"alphabet": str(setup.alphabet), "output_scorer": str(setup.generated),
                                      "verify": False, "ordr": 3}), encoding="utf-8")
    cases.append((["--model", str(setup.model), "--retrain-config", str(bad_config)], "unknown option 'ordr'"))
    for args, message in cases:
        code, output = service(asr_venv, broker, args).run_to_exit()
        assert code == 2 and message in output, (args, code, output)
    assert support.sha256(setup.base) == setup.base_sha


# --- MQTT plumbing (no model needed) ---------------------------------------------------------------

@pytest.mark.fault
def test_failed_transcription_is_reported_and_service_survives(asr_venv, broker, kenlm_bin, tmp_path) -> None:
    setup = Setup(tmp_path, asr_venv, kenlm_bin)  # "model" that the library refuses
    wav = support.write_silence(tmp_path / "silence.wav", 0.5)
    svc = service(asr_venv, broker, ["--model", str(setup.model), "--no-overwrite-train"]).start()
    hermes = support.Hermes(broker.port)
    try:
        captured, errors = hermes.transcribe(wav, "s1")
        assert captured["text"] == "" and captured["siteId"] == SITE
        assert len(errors) == 1 and "transcription failed: ModelFormatError" in errors[0]["error"], errors
        assert hermes.json_messages("rhasspy/asr/recordingFinished")[-1]["sessionId"] == "s1"

        # --no-overwrite-train: training succeeds and changes nothing
        result = train(hermes, setup.graph(SENTENCES), "t-no-overwrite")
        assert result["topic"].endswith("/trainSuccess") and not setup.generated.exists()

        # SIGHUP reloads instead of killing; a restarted broker is reconnected to
        svc.signal(signal.SIGHUP)
        offset = broker.log_offset()
        broker.stop()
        broker.start()
        hermes.close()
        hermes = support.Hermes(broker.port)
        svc.wait_subscribed(offset, timeout=60)
        captured, errors = hermes.transcribe(wav, "s2")
        assert captured["text"] == "" and errors and "ModelFormatError" in errors[0]["error"]
    finally:
        hermes.close()
        svc.stop()


def test_training_needs_a_retrain_config(asr_venv, broker, kenlm_bin, tmp_path) -> None:
    setup = Setup(tmp_path, asr_venv, kenlm_bin)
    svc = service(asr_venv, broker, ["--model", str(setup.model), "--scorer", str(setup.base)]).start()
    hermes = support.Hermes(broker.port)
    try:
        result = train(hermes, setup.graph(SENTENCES), "t-none")
        assert result["topic"] == "hermes/error/asr" and "--retrain-config" in result["error"], result
    finally:
        hermes.close()
        svc.stop()
    assert support.sha256(setup.base) == setup.base_sha and not setup.generated.exists()


# --- training through voice-retrain ----------------------------------------------------------------

GRAPH_VS_TEMPLATES = """
import json, pickle, gzip, sys
from rhasspyasr_deepspeech.train import graph_sentences
from voice_appliance import sentences
with gzip.open(sys.argv[1], "rb") as handle:
    graph = pickle.load(handle)
from_graph = sorted((intent, text) for intent, texts in graph_sentences(graph).items() for text in texts)
_, expanded = sentences.expand_files([sys.argv[2]])
from_templates = sorted(set((item.intent, item.text) for item in expanded))
print(json.dumps([from_graph, from_templates]))
"""


def test_graph_sentences_equal_voice_retrain_expansion(asr_venv, kenlm_bin, tmp_path) -> None:
    setup = Setup(tmp_path, asr_venv, kenlm_bin)
    graph = setup.graph(SENTENCES)
    from_graph, from_templates = json.loads(asr_venv.run(GRAPH_VS_TEMPLATES, str(graph),
                                                         str(graph) + ".ini").stdout)
    assert from_graph == from_templates
    assert ["Licht", "schalte das lampe ein"] in from_graph  # the spoken side of ein:an
    assert len(from_graph) == 2 + 2 * 3 + 3


def test_training_writes_the_generated_scorer_beside_the_base(asr_venv, broker, kenlm_bin, tmp_path) -> None:
    setup = Setup(tmp_path, asr_venv, kenlm_bin)
    svc = service(asr_venv, broker, setup.args()).start()
    hermes = support.Hermes(broker.port)
    try:
        graph = setup.graph(SENTENCES)
        result = train(hermes, graph, "t1")
        assert result["topic"] == "rhasspy/asr/%s/trainSuccess" % SITE, (result, svc.log())
        assert setup.generated.is_file() and setup.generated.parent == setup.base.parent
        assert support.sha256(setup.base) == setup.base_sha, "the base scorer was written"
        assert set(setup.words(setup.generated)) == SENTENCE_WORDS
        first = support.sha256(setup.generated)

        # the same graph again: voice-retrain reports "unchanged" and touches nothing
        assert train(hermes, graph, "t2")["topic"].endswith("/trainSuccess")
        assert support.sha256(setup.generated) == first
        assert not setup.generated.with_name("generated.scorer.previous").exists()

        # a word the alphabet cannot spell: an error naming it; both scorers stay as they were
        result = train(hermes, setup.graph("[Kaffee]\nein café bitte\n", "cafe.pickle.gz"), "t3")
        assert result["topic"] == "hermes/error/asr", result
        assert "[alphabet]" in result["error"] and "café" in result["error"], result
        assert support.sha256(setup.generated) == first and support.sha256(setup.base) == setup.base_sha

        assert "café" not in setup.generated.with_name("rhasspy-sentences.ini").read_text(encoding="utf-8"), \
            "a refused request leaves Rhasspy's earlier sentences in place"

        # a graph file that is not there
        result = train(hermes, tmp_path / "missing.pickle.gz", "t4")
        assert result["topic"] == "hermes/error/asr" and "missing.pickle.gz" in result["error"], result
    finally:
        hermes.close()
        svc.stop()


# --- training requests are attacker input ---------------------------------------------------------

EVIL = """
import gzip, os, pickle, sys
class Evil(object):
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
with gzip.open(sys.argv[1], "wb") as out:
    pickle.dump(Evil(), out)
"""

GRAPH_AS_JSON = """
import gzip, json, pickle, sys
import rhasspynlu
with gzip.open(sys.argv[1], "rb") as handle:
    graph = pickle.load(handle)
with gzip.open(sys.argv[2], "wt", encoding="utf-8") as out:
    json.dump(rhasspynlu.graph_to_json(graph), out)
"""


def test_a_training_request_cannot_run_code_or_read_outside_the_profile(asr_venv, broker, kenlm_bin, tmp_path) -> None:
    setup = Setup(tmp_path, asr_venv, kenlm_bin)
    profile = tmp_path / "profile"
    outside = tmp_path / "outside"
    profile.mkdir()
    outside.mkdir()
    marker = tmp_path / "PWNED"
    evil_outside = outside / "intent_graph.pickle.gz"
    asr_venv.run(EVIL, str(evil_outside), str(marker))
    evil_inside = profile / "evil.pickle.gz"
    asr_venv.run(EVIL, str(evil_inside), str(marker))
    assert not marker.exists()
    (profile / "linked.pickle.gz").symlink_to(evil_outside)
    good = setup.graph(SENTENCES)
    shared = profile / "world-writable.pickle.gz"
    shutil.copy(str(good), str(shared))
    shared.chmod(0o666)
    foreign = profile / "foreign.pickle.gz"
    shutil.copy(str(good), str(foreign))
    os.chown(str(foreign), 65534, 65534)
    as_json = profile / "intent_graph.json.gz"
    asr_venv.run(GRAPH_AS_JSON, str(good), str(as_json))

    args = ["--model", str(setup.model), "--scorer", str(setup.base), "--retrain-config", str(setup.config),
            "--profile-dir", str(profile)]
    svc = service(asr_venv, broker, args).start()
    hermes = support.Hermes(broker.port)
    cases = [
        (evil_outside, "pickle-gzip", "is outside the Rhasspy profile directory %s" % profile),
        (profile / ".." / "outside" / "intent_graph.pickle.gz", "pickle-gzip", "is outside the Rhasspy profile directory"),
        (profile / "linked.pickle.gz", "pickle-gzip", "(resolved: %s) is outside" % evil_outside),
        (evil_inside, "pickle-gzip", "refers to posix.system, which an intent graph never holds"),
        (shared, "pickle-gzip", "is writable by every user (mode 666): chmod o-w %s" % shared),
        (foreign, "pickle-gzip", "is owned by uid 65534"),
        (good, "python", "graph_format 'python' is not supported"),
    ]
    try:
        for index, (graph, graph_format, message) in enumerate(cases):
            result = train(hermes, graph, "attack-%d" % index, graph_format=graph_format)
            assert result["topic"] == "hermes/error/asr", (graph, result)
            assert "training request refused" in result["error"] and message in result["error"], (graph, result)
        assert not marker.exists(), "the crafted pickle ran"
        assert not setup.generated.exists() and support.sha256(setup.base) == setup.base_sha
        # the journal says so too
        assert "training request refused: graph_path %s" % evil_outside in svc.log(10000), svc.log()
        # a real graph inside the profile, as gzip JSON (no unpickling at all), still trains
        result = train(hermes, as_json, "json-graph", graph_format="json-gzip")
        assert result["topic"].endswith("/trainSuccess"), (result, svc.log())
        assert set(setup.words(setup.generated)) == SENTENCE_WORDS
    finally:
        hermes.close()
        svc.stop()
    assert not marker.exists()


def test_the_password_comes_from_a_file_or_credential_never_the_command_line(asr_venv, tmp_path) -> None:
    password = "pw-" + os.urandom(12).hex()
    broker = support.Broker(tmp_path, users={"rhasspy-asr": password, "voice-verify": password + "-v"}).start()
    model = tmp_path / "output_graph.tflite"
    model.write_bytes(b"not a model")
    secret = tmp_path / "rhasspy-asr.password"
    secret.write_text(password + "\n", encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text(password + "\n", encoding="utf-8")
    base = ["--model", str(model), "--no-overwrite-train", "--username", "rhasspy-asr"]
    try:
        for extra, env in ((["--password-file", str(secret)], {}),
                           (["--password-credential", "mqtt-password"], {"CREDENTIALS_DIRECTORY": str(credentials)})):
            svc = support.Service(asr_venv, broker, base + extra, env=dict(SERVICE_ENV, **env)).start()
            try:
                assert svc.proc is not None
                cmdline = Path("/proc/%d/cmdline" % svc.proc.pid).read_bytes()
                assert password.encode() not in cmdline and password.encode() not in Path(
                    "/proc/%d/environ" % svc.proc.pid).read_bytes()
                # the health check logs in with its own password file
                wav = support.write_silence(tmp_path / "silence.wav", 0.5)
                verify_secret = tmp_path / "voice-verify.password"
                verify_secret.write_text(password + "-v\n", encoding="utf-8")
                done = subprocess.run([asr_venv.script("voice-hermes-check"), "--port", str(broker.port), "--site-id", SITE,
                                       "--wav", str(wav), "--username", "voice-verify", "--password-file", str(verify_secret),
                                       "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      universal_newlines=True, timeout=120)
                assert done.returncode == 2 and "the ASR service reported an error" in done.stderr, done.stderr
            finally:
                svc.stop()
            assert password not in svc.log()

        refusals = [
            (["--password-credential", "mqtt-password"], {}, "$CREDENTIALS_DIRECTORY is not set"),
            (["--password-file", str(tmp_path / "nope")], {}, "cannot read the MQTT password file %s" % (tmp_path / "nope")),
            (["--password-file", str(secret), "--password", "x"], {}, "give the MQTT password once"),
        ]
        for extra, env, message in refusals:
            code, output = support.Service(asr_venv, broker, base + extra, env=dict(SERVICE_ENV, **env)).run_to_exit()
            assert code == 2 and message in output, (extra, code, output)
        code, output = support.Service(asr_venv, broker, ["--model", str(model), "--password-file", str(secret)],
                                       env=SERVICE_ENV).run_to_exit()
        assert code == 2 and "needs --username" in output, output
        # a missing password file of the health check is named (exit 64), nothing is sent
        done = subprocess.run([asr_venv.script("voice-hermes-check"), "--port", str(broker.port), "--site-id", SITE,
                               "--wav", str(tmp_path / "silence.wav"), "--username", "voice-verify",
                               "--password-file", str(tmp_path / "missing.password")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        assert done.returncode == 64 and "cannot read the MQTT password file %s" % (tmp_path / "missing.password") in done.stderr
    finally:
        broker.stop()


# --- with the fixture model: transcription before and after training -------------------------------

ALPHA_BETA = """
import json, sys, wave, warnings
from pathlib import Path
import numpy
import deepspeech
from rhasspyasr_deepspeech import DeepSpeechTranscriber
model, scorer, wav = sys.argv[1:4]
data = Path(wav).read_bytes()
warnings.simplefilter("error", RuntimeWarning)  # the compat library warns on lost alpha/beta

def patched(alpha, beta):
    result = DeepSpeechTranscriber(Path(model), Path(scorer), lm_alpha=alpha, lm_beta=beta).transcribe_wav(data)
    return [result.text, result.likelihood]

def before_enabling(alpha, beta):  # the Sh4der fork's order
    m = deepspeech.Model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = m.setScorerAlphaBeta(alpha, beta)
    m.enableExternalScorer(scorer)
    with wave.open(wav) as w:
        audio = numpy.frombuffer(w.readframes(w.getnframes()), numpy.int16)
    return [m.stt(audio), status]

print(json.dumps({"default": patched(%r, %r), "penalty": patched(0.93, -200.0),
                  "bonus": patched(0.93, 100.0), "wrong_order": before_enabling(0.93, -200.0)}))
"""


def test_alpha_beta_are_applied_after_the_scorer(asr_venv, fixture_model) -> None:
    # The base scorer stores the German defaults; a huge word insertion penalty must change the
    # decoding — unless it is set before the scorer is enabled, where 0.7.4 drops it (0x2004).
    scorer = support.BASE_SCORER_DATA / "reference.scorer"
    code = ALPHA_BETA % (0.931289039105002, 1.1834137581510284)
    result = json.loads(asr_venv.run(code, str(fixture_model["model"]), str(scorer),
                                     str(fixture_model["wav"])).stdout.strip().splitlines()[-1])
    print(result)
    assert result["default"][0].split() and result["penalty"][0] != result["default"][0]
    assert len(result["penalty"][0].split()) < len(result["default"][0].split())
    assert result["wrong_order"] == [result["default"][0], 0x2004]
    assert 0 < result["default"][1] <= 1 and result["bonus"][1] == 1.0  # capped, no OverflowError


def test_transcribes_and_uses_the_trained_scorer(asr_venv, broker, kenlm_bin, tmp_path, fixture_model) -> None:
    setup = Setup(tmp_path, asr_venv, kenlm_bin, fixture_model)
    expected = fixture_model["transcript"]
    base_words = set(setup.words(setup.base))
    assert "test" not in base_words and {"das", "ist", "ein"} <= base_words
    svc = service(asr_venv, broker, setup.args()).start()
    hermes = support.Hermes(broker.port)
    try:
        # 1. the base scorer restricts the decoding to its words: "test" cannot come out
        captured, errors = hermes.transcribe(fixture_model["wav"], "before")
        assert not errors, (errors, svc.log())
        words = captured["text"].split()
        print("with the base scorer:", words)
        assert words and set(words) <= base_words and captured["text"] != expected

        # 2. training: the generated scorer beside the base one (verified by voice-retrain)
        result = train(hermes, setup.graph(SENTENCES), "train-1")
        assert result["topic"].endswith("/trainSuccess"), (result, svc.log())
        assert setup.generated.is_file() and support.sha256(setup.base) == setup.base_sha

        # 3. the next transcription uses it
        captured, errors = hermes.transcribe(fixture_model["wav"], "after")
        assert not errors, (errors, svc.log())
        assert captured["text"] == expected, svc.log()
        assert captured["siteId"] == SITE and captured["sessionId"] == "after" and captured["likelihood"] > 0
    finally:
        hermes.close()
        svc.stop()

    # 4. a restarted service picks the generated scorer up by itself
    svc = service(asr_venv, broker, setup.args()).start()
    hermes = support.Hermes(broker.port)
    try:
        captured, errors = hermes.transcribe(fixture_model["wav"], "restarted")
        assert not errors and captured["text"] == expected, (captured, errors, svc.log())
    finally:
        hermes.close()
        svc.stop()
    assert support.sha256(setup.base) == setup.base_sha


def test_training_and_sentences_ini_make_one_vocabulary(asr_venv, broker, kenlm_bin, tmp_path) -> None:
    """Rhasspy's sentences (a training request) and the user's sentences.ini (voice-retrain) build one
    scorer together: whichever changes last, the other's words stay."""
    setup = Setup(tmp_path, asr_venv, kenlm_bin)
    svc = service(asr_venv, broker, setup.args()).start()
    hermes = support.Hermes(broker.port)
    try:
        result = train(hermes, setup.graph("[Kaffee]\nkoche einen kaffee\n", "kaffee.pickle.gz"), "k1")
        assert result["topic"].endswith("/trainSuccess"), (result, svc.log())
        kept = setup.generated.with_name("rhasspy-sentences.ini")
        assert "koche einen kaffee" in kept.read_text(encoding="utf-8")
        assert set(setup.words(setup.generated)) == {"das", "ist", "ein", "test", "koche", "einen", "kaffee"}
        # The user edits sentences.ini and voice-retrain runs (as its path unit would): Rhasspy's words stay.
        setup.sentences.write_text("[Test]\n(das ist | ist das) ein test\n[Licht]\nlicht an\n", encoding="utf-8")
        asr_venv.run("import sys; from voice_appliance.retrain import main; sys.exit(main(sys.argv[1:]))",
                     "--config", str(setup.config))
        assert set(setup.words(setup.generated)) == {"das", "ist", "ein", "test", "koche", "einen", "kaffee",
                                                     "licht", "an"}
        # A new training request replaces only Rhasspy's part.
        assert train(hermes, setup.graph("[Tee]\nkoche einen tee\n", "tee.pickle.gz"), "k2")["topic"].endswith(
            "/trainSuccess")
        assert set(setup.words(setup.generated)) == {"das", "ist", "ein", "test", "koche", "einen", "tee", "licht", "an"}
    finally:
        hermes.close()
        svc.stop()
