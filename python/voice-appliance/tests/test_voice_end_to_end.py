"""voice-retrain with the real fixture model, the official libdeepspeech 0.7.4 and the project's
``deepspeech`` CLI (python/deepspeech-compat): the packaged scorer must be accepted by the
official library, make the verification WAV decode correctly, and restrict decoding to its
vocabulary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from voice_appliance import retrain, scorer
from voice_appliance.retrain import RetrainError

REPO = Path(__file__).resolve().parents[3]
# PI_VOICE_FIXTURE_DIR: another copy of the fixture (e.g. a freshly generated one).
FIXTURE = Path(os.environ.get("PI_VOICE_FIXTURE_DIR") or REPO / "files" / "fixture")
COMPAT = REPO / "python" / "deepspeech-compat"

pytestmark = pytest.mark.skipif(
    not (FIXTURE / "manifest.json").is_file() or not (COMPAT / "deepspeech").is_dir(),
    reason="needs the fixture model (files/fixture) and python/deepspeech-compat")

SENTENCES = """\
[Test]
(das ist | ist das) ein test

[Licht]
schalte das (licht | radio) (an | aus | ein)

[Fragen]
wie spät ist es
wie (viel uhr ist es | ist das wetter)
"""


@pytest.fixture(scope="module")
def official_library() -> str:
    sys.path.insert(0, str(COMPAT / "tests"))
    import dscompat_support as support  # the project's sha256-checked wheel fetcher

    return support.extract_library(support.fetch_artifact(*support.FLAVOUR_WHEELS["tflite"]))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, official_library: str) -> Dict[str, Any]:
    monkeypatch.setenv("DEEPSPEECH_LIBRARY", official_library)
    monkeypatch.setenv("PYTHONPATH", str(COMPAT))
    manifest = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
    return {"model": str(FIXTURE / manifest["model"]["tflite"]),
            "alphabet": str(FIXTURE / manifest["model"]["alphabet"]),
            "wav": str(FIXTURE / manifest["test_wav"]["file"]),
            "transcript": manifest["test_wav"]["transcript"]}


def decode(model: str, scorer_path: str, wav: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "deepspeech", "--model", model, "--scorer",
                           scorer_path, "--audio", wav], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def config(tmp_path: Path, env: Dict[str, Any], kenlm_bin: Path, text: str,
           **extra: Any) -> Dict[str, Any]:
    sentences = tmp_path / "sentences.ini"
    sentences.write_text(text, encoding="utf-8")
    return retrain.load_config(None, dict(extra, **{
        "sentences": [str(sentences)], "alphabet": env["alphabet"], "model": env["model"],
        "output_scorer": str(tmp_path / "generated.scorer"), "kenlm_bin_dir": str(kenlm_bin),
        "verify_audio": env["wav"], "verify_transcript": env["transcript"],
        "verify_command": [sys.executable, "-m", "deepspeech", "--model", "{model}",
                           "--scorer", "{scorer}", "--audio", "{audio}"]}))


def test_retrained_scorer_loads_and_decodes_the_verification_wav(tmp_path, env, kenlm_bin):
    summary = retrain.run(config(tmp_path, env, kenlm_bin, SENTENCES), log=lambda m: None)
    assert summary["changed"] is True
    assert summary["verified_transcript"] == env["transcript"]
    target = tmp_path / "generated.scorer"
    assert decode(env["model"], str(target), env["wav"]) == env["transcript"]


def test_decoding_is_restricted_to_the_vocabulary(tmp_path, env, kenlm_bin):
    # "test" is missing from this vocabulary: the verification must fail, the output may only
    # use the scorer's words, and nothing is installed.
    text = "[Fest]\ndas ist ein fest\nist das ein text\n"
    with pytest.raises(RetrainError, match=r"\[verify\] the new scorer decoded") as err:
        retrain.run(config(tmp_path, env, kenlm_bin, text, add_verify_transcript=False),
                    log=lambda m: None)
    assert err.value.code == 7
    assert not (tmp_path / "generated.scorer").exists()
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(text.split("\n", 1)[1], encoding="utf-8")
    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    corpus = lm_dir / "corpus.txt"
    corpus.write_text("das ist ein fest\nist das ein text\n", encoding="utf-8")
    subprocess.run([str(kenlm_bin / "lmplz"), "-o", "2", "-S", "64M", "-T", str(lm_dir),
                    "--discount_fallback", "--text", str(corpus), "--arpa",
                    str(lm_dir / "lm.arpa")], check=True, stderr=subprocess.DEVNULL)
    subprocess.run([str(kenlm_bin / "build_binary"), "-a", "255", "-q", "8", "-v", "trie",
                    str(lm_dir / "lm.arpa"), str(lm_dir / "lm.binary")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    restricted = tmp_path / "restricted.scorer"
    scorer.package(env["alphabet"], lm_dir / "lm.binary", vocab, restricted, 0.93, 1.18)
    words: List[str] = decode(env["model"], str(restricted), env["wav"]).split()
    print("restricted decode:", words)
    assert words and set(words) <= {"das", "ist", "ein", "fest", "text"}
    assert "test" not in words


HELDOUT_DECODER = """
import json, sys, wave
import deepspeech
model = deepspeech.Model(sys.argv[1])
status = model.enableExternalScorer(sys.argv[2])
out = {}
for path in sys.argv[3:]:
    with wave.open(path) as w:
        out[path] = model.stt(w.readframes(w.getnframes()))
print(json.dumps(out))
"""


def test_heldout_set_is_fully_right_with_a_scorer_from_the_project_tooling(tmp_path, env, kenlm_bin):
    """The fixture's whole vocabulary through voice-retrain (KenLM + the project's packager): the
    official library, decoding the held-out WAVs with that scorer, gets every sentence right."""
    manifest = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
    sentences = "[Fixture]\n" + "\n".join(manifest["vocabulary"]) + "\n"
    retrain.run(config(tmp_path, env, kenlm_bin, sentences), log=lambda m: None)
    rows = [line.split("\t") for line in (FIXTURE / "heldout" / "transcripts.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    wavs = [str(FIXTURE / "heldout" / row[0]) for row in rows]
    proc = subprocess.run([sys.executable, "-c", HELDOUT_DECODER, env["model"], str(tmp_path / "generated.scorer")] + wavs,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    heard = json.loads(proc.stdout)
    wrong = {row[0]: heard[wav] for row, wav in zip(rows, wavs) if heard[wav] != row[1]}
    assert len(rows) >= 30 and not wrong, wrong
