"""Model-format, WAV and scorer checks (pure Python, no native library)."""
from __future__ import annotations

import os
import shlex
import shutil
import struct
import subprocess
from array import array

import pytest

import dscompat_support as support
from dscompat_support import write_pcm_wav, write_raw_wav
from deepspeech import _checks
from deepspeech._errors import AudioFormatError, ModelFormatError, ModelNotFoundError


# --- model files -------------------------------------------------------------------------

def test_sniff_model_formats(tmp_path):
    tfl, pb, pbmm, other = (str(tmp_path / n) for n in ("m.tflite", "m.pb", "m.pbmm", "m.bin"))
    support.write_tflite_header(tfl)
    support.write_graphdef(pb)
    support.write_graphdef(pbmm)
    with open(other, "wb") as handle:
        handle.write(b"hello world, no model")
    assert [_checks.sniff_model(p) for p in (tfl, pb, pbmm, other)] == ["tflite", "protobuf", "memmapped", "unknown"]
    renamed = str(tmp_path / "really_a_tflite.pb")
    support.write_tflite_header(renamed)
    assert _checks.sniff_model(renamed) == "tflite"  # content wins over the name


def test_pb_to_tflite_library_is_explained(tmp_path):
    pb = str(tmp_path / "output_graph.pb")
    support.write_graphdef(pb)
    with pytest.raises(ModelFormatError) as caught:
        _checks.check_model_file(pb, "tflite", "/x/libdeepspeech.so")
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError) and caught.value.code == 0x3000
    assert "Model provided has model identifier 'inpu', should be 'TFL3'" in message
    assert "error code 12288" in message and "TFLite build" in message
    assert "output_graph.tflite" in message and "full TensorFlow build" in message
    assert pb in message and "/x/libdeepspeech.so" in message


def test_tflite_to_tensorflow_library_is_explained(tmp_path):
    tfl = str(tmp_path / "output_graph.tflite")
    support.write_tflite_header(tfl)
    with pytest.raises(ModelFormatError) as caught:
        _checks.check_model_file(tfl, "tensorflow", "/y/libdeepspeech.so")
    assert caught.value.code == 0x3005
    assert "is a TFLite model" in str(caught.value) and ".pb" in str(caught.value)
    assert "deepspeech-tflite" in str(caught.value)


def test_matching_and_unknown_flavours_pass(tmp_path):
    tfl, pb, junk = str(tmp_path / "m.tflite"), str(tmp_path / "m.pb"), str(tmp_path / "m.dat")
    support.write_tflite_header(tfl)
    support.write_graphdef(pb)
    with open(junk, "wb") as handle:
        handle.write(b"zzzzzzzzzzzz")
    _checks.check_model_file(tfl, "tflite", "lib")
    _checks.check_model_file(pb, "tensorflow", "lib")
    _checks.check_model_file(pb, "unknown", "lib")
    with pytest.raises(ModelFormatError, match="not a TFLite model"):
        _checks.check_model_file(junk, "tflite", "lib")


def test_missing_model_names_the_sibling(tmp_path):
    support.write_graphdef(str(tmp_path / "output_graph.pb"))
    missing = str(tmp_path / "output_graph.tflite")
    with pytest.raises(ModelNotFoundError) as caught:
        _checks.check_model_file(missing, "tflite", "lib")
    assert isinstance(caught.value, RuntimeError)
    assert "does not exist" in str(caught.value) and missing in str(caught.value)
    assert str(tmp_path / "output_graph.pb") + " exists" in str(caught.value)
    with pytest.raises(ModelNotFoundError, match="is a directory"):
        _checks.check_model_file(str(tmp_path), "tflite", "lib")


# --- WAV ----------------------------------------------------------------------------------

def test_read_good_wav(tmp_path):
    path = str(tmp_path / "ok.wav")
    samples = write_pcm_wav(path)
    audio = _checks.read_wav(path)
    assert audio.samples == samples and audio.sample_rate == 16000 and audio.channels == 1
    assert audio.seconds == pytest.approx(0.1)


def test_stereo_44k_wav_offers_sox(tmp_path):
    path = str(tmp_path / "my clip.wav")
    write_pcm_wav(path, rate=44100, channels=2)
    with pytest.raises(AudioFormatError) as caught:
        _checks.read_wav(path)
    message = str(caught.value)
    assert "2 channels (needs 1, mono)" in message and "44100 Hz (the model needs 16000 Hz)" in message
    assert "sox '{}' -r 16000 -c 1 -b 16 -e signed-integer".format(path) in message


def test_8bit_and_float_and_not_wav(tmp_path):
    eight = str(tmp_path / "8bit.wav")
    write_pcm_wav(eight, width=1)
    with pytest.raises(AudioFormatError, match="8 bits per sample"):
        _checks.read_wav(eight)
    flt = str(tmp_path / "float.wav")
    write_raw_wav(flt, struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32), b"\x00" * 400)
    with pytest.raises(AudioFormatError) as caught:
        _checks.read_wav(flt)
    assert "IEEE float" in str(caught.value) and "32 bits" in str(caught.value)
    mp3 = str(tmp_path / "song.mp3.wav")
    with open(mp3, "wb") as handle:
        handle.write(b"ID3\x03\x00" + b"\x00" * 100)
    with pytest.raises(AudioFormatError, match="not a WAV file"):
        _checks.read_wav(mp3)
    with pytest.raises(FileNotFoundError, match="nothere.wav"):
        _checks.read_wav(str(tmp_path / "nothere.wav"))


def test_extensible_pcm_and_odd_chunks(tmp_path):
    data = array("h", range(-50, 50)).tobytes()
    guid_pcm = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 16000, 32000, 2, 16) + struct.pack("<HHI", 22, 16, 4) + guid_pcm
    odd_list = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\x00"  # odd size, padded
    path = str(tmp_path / "ext.wav")
    write_raw_wav(path, fmt, data, extra_chunks=odd_list)
    assert list(_checks.read_wav(path).samples) == list(range(-50, 50))
    broken = str(tmp_path / "broken.wav")
    with open(broken, "wb") as handle:
        handle.write(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(AudioFormatError, match="damaged WAV"):
        _checks.read_wav(broken)


def test_rate_checked_later(tmp_path):
    path = str(tmp_path / "8k.wav")
    write_pcm_wav(path, rate=8000)
    audio = _checks.read_wav(path, sample_rate=None)
    with pytest.raises(AudioFormatError, match="8000 Hz"):
        _checks.check_rate(path, audio, 16000)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_offered_sox_command_produces_usable_audio(tmp_path):
    path = str(tmp_path / "stereo 48k.wav")
    write_pcm_wav(path, rate=48000, channels=2, frames=4800)
    with pytest.raises(AudioFormatError) as caught:
        _checks.read_wav(path)
    command = str(caught.value).split("Convert it: ", 1)[1]
    subprocess.run(shlex.split(command), check=True)
    converted = shlex.split(command)[-1]
    audio = _checks.read_wav(converted)
    assert audio.sample_rate == 16000 and audio.channels == 1 and len(audio.samples) == 1600


# --- scorer -------------------------------------------------------------------------------

def test_scorer_diagnosis(tmp_path):
    def scorer(name: str, data: bytes) -> str:
        path = str(tmp_path / name)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    magic = b"mmap lm http://kheafield.com/code format version 5\n\x00"
    assert "does not exist" in _checks.diagnose_scorer(str(tmp_path / "none.scorer"))
    assert "is empty" in _checks.diagnose_scorer(scorer("empty.scorer", b""))
    assert "ARPA text language model" in _checks.diagnose_scorer(scorer("lm.arpa", b"\\data\\\nngram 1=3\n"))
    assert "TFLite acoustic model" in _checks.diagnose_scorer(scorer("m.scorer", b"\x1c\x00\x00\x00TFL3" + b"\x00" * 16))
    assert "without the vocabulary trie" in _checks.diagnose_scorer(scorer("lm.binary", magic + b"\x01" * 100))
    old = _checks.diagnose_scorer(scorer("old.scorer", magic + b"\x02" * 40 + b"EIRT" + struct.pack("<i", 5)))
    assert "trie version 5" in old and "0x2009" in old
    assert "truncated" in _checks.diagnose_scorer(scorer("cut.scorer", magic + b"EIRT\x06"))
    assert "still refused" in _checks.diagnose_scorer(scorer("v6.scorer", magic + b"EIRT" + struct.pack("<i", 6) + b"\x01"))
    directory = str(tmp_path / "dir.scorer")
    os.mkdir(directory)
    assert "is a directory" in _checks.diagnose_scorer(directory)
