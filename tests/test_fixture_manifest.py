"""The committed fixture model (files/fixture) matches its manifest and the 0.7.4 file formats."""
from __future__ import annotations

import hashlib
import json
import wave
from pathlib import Path
from typing import Dict, List

import pytest

FIXTURE = Path(__file__).resolve().parent.parent / "files" / "fixture"
MAX_FILE_BYTES = 2 * 1024 * 1024
EXPECTED_LABELS = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["ä", "ö", "ü", "'"]


def _manifest() -> Dict[str, object]:
    path = FIXTURE / "manifest.json"
    assert path.is_file(), "missing %s: regenerate with `make -C fixture-model`" % path
    return json.loads(path.read_text(encoding="utf-8"))


def _files() -> Dict[str, Dict[str, object]]:
    files = _manifest()["files"]
    assert isinstance(files, dict) and files, "manifest.json lists no files"
    return files  # type: ignore[return-value]


def read_alphabet(path: Path) -> List[str]:
    """Labels as libdeepspeech reads them: one per line, only '\\n' stripped, '#' lines skipped."""
    labels = []
    for line in path.read_bytes().decode("utf-8").split("\n")[:-1]:
        if line.startswith("#"):
            continue
        labels.append("#" + line[2:] if line.startswith("\\#") else line)
    return labels


@pytest.mark.parametrize("name", sorted(_files()))
def test_listed_file_matches_hash_and_size(name: str) -> None:
    entry = _files()[name]
    path = FIXTURE / name
    assert path.is_file(), "%s is listed in manifest.json but missing" % path
    data = path.read_bytes()
    assert len(data) == entry["size"], "%s: size %d, manifest says %r" % (name, len(data), entry["size"])
    digest = hashlib.sha256(data).hexdigest()
    assert digest == entry["sha256"], "%s: sha256 %s, manifest says %s" % (name, digest, entry["sha256"])
    assert len(data) < MAX_FILE_BYTES, "%s is %d bytes; fixture files must stay under 2 MB" % (name, len(data))


def test_every_fixture_file_is_listed() -> None:
    on_disk = {p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*") if p.is_file()}
    unlisted = on_disk - set(_files()) - {"manifest.json"}
    assert not unlisted, "files not in manifest.json: %s" % sorted(unlisted)


def test_file_names_are_portable_ascii() -> None:
    odd = [n for n in _files() if not all(c.isascii() and (c.isalnum() or c in "._-/") for c in n)]
    assert not odd, "fixture file names must be plain ASCII (no umlauts or spaces): %s" % odd


def test_required_artifacts_are_listed() -> None:
    required = {"output_graph.tflite", "output_graph.pb", "alphabet.txt", "das_ist_ein_test.wav",
                "das_ist_ein_test.txt", "heldout/transcripts.tsv"}
    assert required <= set(_files()), "manifest lacks %s" % sorted(required - set(_files()))


def test_alphabet_is_the_german_31_labels_with_lf_endings() -> None:
    raw = (FIXTURE / "alphabet.txt").read_bytes()
    assert b"\r" not in raw, "alphabet.txt has CR bytes: libdeepspeech would make '\\r' part of labels"
    assert raw.endswith(b"\n"), "alphabet.txt must end with a newline"
    labels = read_alphabet(FIXTURE / "alphabet.txt")
    assert len(labels) == 31, "alphabet has %d labels, expected 31" % len(labels)
    assert labels[0] == " ", "the first label must be the space, got %r" % labels[0]
    assert labels == EXPECTED_LABELS


def test_tflite_has_identifier_and_pb_does_not() -> None:
    tflite = (FIXTURE / "output_graph.tflite").read_bytes()
    pb = (FIXTURE / "output_graph.pb").read_bytes()
    assert tflite[4:8] == b"TFL3", "output_graph.tflite lacks the TFL3 identifier at offset 4"
    assert pb[4:8] != b"TFL3", "output_graph.pb is a TFLite file; the full-TF runtime needs a GraphDef"
    for name in (b"input_node", b"previous_state_c", b"input_samples", b"logits", b"mfccs",
                 b"metadata_alphabet", b"metadata_version"):
        assert name in tflite, "output_graph.tflite has no tensor named %s" % name.decode()
        assert name in pb, "output_graph.pb has no node named %s" % name.decode()


def _wavs() -> List[str]:
    return sorted(n for n in _files() if n.endswith(".wav"))


@pytest.mark.parametrize("name", _wavs())
def test_wav_is_16khz_mono_16bit(name: str) -> None:
    with wave.open(str(FIXTURE / name), "rb") as src:
        shape = (src.getframerate(), src.getnchannels(), src.getsampwidth())
        frames = src.getnframes()
    assert shape == (16000, 1, 2), "%s: (rate, channels, width) %r, expected (16000, 1, 2)" % (name, shape)
    assert frames > 16000 // 4, "%s holds only %d samples" % (name, frames)


def test_test_wav_transcript() -> None:
    manifest = _manifest()
    expected = (FIXTURE / "das_ist_ein_test.txt").read_text(encoding="utf-8")
    assert expected == "das ist ein test\n"
    assert manifest["test_wav"]["transcript"] == expected.strip()  # type: ignore[index]


def test_heldout_transcripts_use_only_alphabet_characters() -> None:
    labels = set(read_alphabet(FIXTURE / "alphabet.txt"))
    lines = (FIXTURE / "heldout" / "transcripts.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t")[:2] == ["wav", "transcript"], "transcripts.tsv needs a wav/transcript header"
    rows = [line.split("\t") for line in lines[1:]]
    assert rows, "transcripts.tsv lists no WAVs"
    listed = {n for n in _files() if n.startswith("heldout/") and n.endswith(".wav")}
    assert {"heldout/" + r[0] for r in rows} == listed, "transcripts.tsv and the held-out WAVs differ"
    vocabulary = set(_manifest()["vocabulary"])  # type: ignore[arg-type]
    for row in rows:
        text = row[1]
        bad = sorted(set(text) - labels)
        assert not bad, "%s: transcript %r uses characters outside the alphabet: %r" % (row[0], text, bad)
        assert text in vocabulary, "%s: transcript %r is not in the manifest's vocabulary" % (row[0], text)


def test_manifest_records_official_accuracy() -> None:
    accuracy = _manifest()["accuracy_official_no_scorer"]
    assert isinstance(accuracy, dict) and len(accuracy) == 2, "accuracy for both official runtimes expected"
    for runtime, result in accuracy.items():
        assert result["test_wav"] == "das ist ein test", "%s transcribed the test WAV as %r" % (
            runtime, result["test_wav"])
        held = result["heldout"]
        assert held["total"] == len([n for n in _files() if n.startswith("heldout/") and n.endswith(".wav")])
        assert held["correct"] / held["total"] >= 0.95, "%s: held-out exact %r" % (runtime, held["exact"])
