"""Pure-Python checks that turn libdeepspeech's terse failures into explained errors.

- model files: which format a file is (TFLite FlatBuffer, TensorFlow protobuf,
  memory-mapped protobuf) and whether the loaded library flavour can read it;
- scorer files: why ``DS_EnableExternalScorer`` refused one;
- WAV files: 16-bit mono PCM at the model's rate, read without numpy.

Nothing here needs the native library.
"""
from __future__ import annotations

import os
import shlex
import struct
import sys
from array import array
from typing import NamedTuple, Optional

from ._errors import AudioFormatError, ModelFormatError, ModelNotFoundError

MODEL_TFLITE = "tflite"
MODEL_PROTOBUF = "protobuf"
MODEL_MEMMAPPED = "memmapped"
MODEL_UNKNOWN = "unknown"

_TFLITE_MSG = "Model provided has model identifier '{}', should be 'TFL3'"


def sniff_model(path: str) -> str:
    """Format of a model file: ``tflite``, ``protobuf``, ``memmapped`` or ``unknown``.

    A TFLite FlatBuffer has the file identifier ``TFL3`` at offset 4. A frozen
    GraphDef starts with a protobuf field tag (``0x0a``: repeated ``node``). The
    TensorFlow library treats any path containing ``.pbmm`` as memory-mapped, so
    that is decided by the name, as the library does.
    """
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return MODEL_TFLITE
    if ".pbmm" in os.path.basename(path):
        return MODEL_MEMMAPPED
    if head[:1] in (b"\x0a", b"\x12", b"\x1a", b"\x22") or path.endswith(".pb"):
        return MODEL_PROTOBUF
    return MODEL_UNKNOWN


def _identifier(path: str) -> str:
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head[4:8].decode("latin-1") if len(head) >= 8 else "<file shorter than 8 bytes>"


def check_model_file(path: str, flavour: str, library_path: str) -> None:
    """Raise ModelNotFoundError / ModelFormatError when ``path`` cannot load in ``flavour``.

    ``flavour`` is the loaded library's (``tflite``, ``tensorflow`` or
    ``unknown``; with ``unknown`` only existence is checked).
    """
    if not os.path.exists(path):
        hint = ""
        stem = os.path.splitext(path)[0]
        for other in (".tflite", ".pb", ".pbmm"):
            if not path.endswith(other) and os.path.isfile(stem + other):
                hint = " ({} exists: is that the model you meant?)".format(stem + other)
                break
        raise ModelNotFoundError(
            "CreateModel failed: model file {!r} does not exist{}. Give the path of the acoustic model: "
            "output_graph.tflite for the TFLite library (ARM, deepspeech-tflite), output_graph.pb/.pbmm "
            "for the full TensorFlow library (x86_64 deepspeech). Called anyway, the library only reports "
            "'Failed to initialize memory mapped model.' (0x3000) or 'Error reading the proto buffer model "
            "file.' (0x3005).".format(path, hint),
            None,
        )
    if os.path.isdir(path):
        raise ModelNotFoundError(
            "CreateModel failed: {!r} is a directory; give the model file inside it "
            "(output_graph.tflite or output_graph.pb/.pbmm).".format(path),
            None,
        )
    kind = sniff_model(path)
    if flavour == "tflite" and kind != MODEL_TFLITE:
        if kind in (MODEL_PROTOBUF, MODEL_MEMMAPPED):
            what = "a TensorFlow protobuf graph ({})".format("memory-mapped .pbmm" if kind == MODEL_MEMMAPPED else ".pb")
        else:
            what = "not a TFLite model (no 'TFL3' identifier at byte 4)"
        raise ModelFormatError(
            "CreateModel failed: model {!r} is {}, but the loaded libdeepspeech ({}) is the TFLite build, "
            "which reads only .tflite files. Loaded anyway it fails with \"{}\" and 'CreateModel failed "
            "with error code 12288' (0x3000, 'Failed to initialize memory mapped model.'). Fix: use the "
            "model's output_graph.tflite (the only format the ARM library reads), or, on x86_64, load the "
            ".pb/.pbmm with the full TensorFlow build (the 'deepspeech' wheel, not 'deepspeech-tflite').".format(
                path, what, library_path, _TFLITE_MSG.format(_identifier(path))
            ),
            0x3000,
        )
    if flavour == "tensorflow" and kind == MODEL_TFLITE:
        raise ModelFormatError(
            "CreateModel failed: model {!r} is a TFLite model, but the loaded libdeepspeech ({}) is the full "
            "TensorFlow build, which reads only .pb/.pbmm graphs. Loaded anyway it fails with 'Error reading "
            "the proto buffer model file.' (0x3005). Fix: use the model's output_graph.pb or .pbmm with this "
            "library, or load the .tflite with the TFLite build (the 'deepspeech-tflite' wheel on x86_64, "
            "the 'deepspeech' wheel on ARM).".format(path, library_path),
            0x3005,
        )


def explain_model_code(code: int) -> str:
    """Extra explanation for a DS_CreateModel failure the pre-checks did not foresee."""
    return {
        0x2000: "the alphabet embedded in the model is invalid; re-export the model",
        0x2001: "the model's input/output shapes are not what libdeepspeech 0.7.4 expects",
        0x2003: "the model's metadata_version is too old for libdeepspeech 0.7.4; export it with DeepSpeech 0.7.x",
        0x3000: "the file is not a loadable model for this library (truncated or corrupt?)",
        0x3005: "the file is not a readable TensorFlow graph (truncated or corrupt?)",
    }.get(code, "")


# --- scorer ---------------------------------------------------------------------------

_KENLM_MAGIC = b"mmap lm http://kheafield.com/code"
_TRIE_MAGIC = b"EIRT"  # int32 'TRIE' in little-endian
_TRIE_VERSION = 6


def diagnose_scorer(path: str) -> str:
    """Why a scorer file was refused, as far as can be told from outside the library.

    0.7.4's ``DS_EnableExternalScorer`` maps every failure to 0x2002; the
    loader's real reason (0x2005 unreadable, 0x2006 no KenLM header, 0x2007 no
    trie, 0x2008 bad trie magic, 0x2009 wrong version) is reconstructed here.
    """
    if not os.path.exists(path):
        return "the scorer file {!r} does not exist (0x2005: 'Could not read scorer file.')".format(path)
    if os.path.isdir(path):
        return "{!r} is a directory, not a scorer file".format(path)
    if not os.access(path, os.R_OK):
        return "the scorer file {!r} is not readable by this user (0x2005)".format(path)
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(64)
        if not head.startswith(_KENLM_MAGIC):
            if head.startswith(b"\\data\\") or head.lstrip().startswith(b"\\data\\"):
                kind = "an ARPA text language model"
            elif head[4:8] == b"TFL3":
                kind = "a TFLite acoustic model"
            elif size == 0:
                kind = "empty"
            else:
                kind = "not a KenLM binary"
            return (
                "{!r} is {}: a 0.7.4 scorer is a KenLM binary (built with build_binary -v ... trie) followed by "
                "the vocabulary trie (0x2006: 'Could not recognize language model header in scorer.'). Package "
                "it with the 0.7.4 scorer packager".format(path, kind)
            )
        handle.seek(0)
        data = handle.read()
    position = data.find(_TRIE_MAGIC, len(_KENLM_MAGIC))
    if position < 0:
        return (
            "{!r} is a bare KenLM binary without the vocabulary trie (0x2007/0x2008: a lm.binary is not a "
            "scorer); package it together with the vocabulary into a .scorer".format(path)
        )
    if len(data) < position + 8:
        return "{!r} ends inside the trie header (truncated file, 0x2007)".format(path)
    (version,) = struct.unpack("<i", data[position + 4 : position + 8])
    if version != _TRIE_VERSION:
        return (
            "{!r} has trie version {}, libdeepspeech 0.7.4 reads version {} (0x2009): the scorer was made for "
            "another DeepSpeech release".format(path, version, _TRIE_VERSION)
        )
    return (
        "{!r} has a KenLM header and a version-{} trie but the library still refused it (0x2008 invalid trie "
        "header, or a corrupt/truncated trie): rebuild the package from the model's alphabet".format(path, _TRIE_VERSION)
    )


# --- WAV ------------------------------------------------------------------------------

class WavAudio(NamedTuple):
    samples: array  # array('h'), native byte order
    sample_rate: int
    channels: int
    bits: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.sample_rate * self.channels) if self.sample_rate else 0.0


_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {1: "PCM", 3: "IEEE float", 6: "A-law", 7: "mu-law", 2: "MS ADPCM", 0x11: "IMA ADPCM", 0x55: "MP3"}


def sox_command(path: str, sample_rate: int = 16000) -> str:
    stem, _ = os.path.splitext(path)
    target = "{}-{}k-mono.wav".format(stem, sample_rate // 1000) if sample_rate % 1000 == 0 else stem + "-converted.wav"
    return "sox {} -r {} -c 1 -b 16 -e signed-integer {}".format(shlex.quote(path), sample_rate, shlex.quote(target))


def read_wav(path: str, sample_rate: Optional[int] = 16000) -> WavAudio:
    """Read a WAV file of 16-bit mono PCM; AudioFormatError (with the sox fix) for anything else.

    ``sample_rate=None`` skips the rate check (for checking before the model is
    loaded; call ``check_rate`` later).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError("audio file {!r} does not exist".format(path))
    with open(path, "rb") as handle:
        data = handle.read()
    want = sample_rate or 16000
    fix = "Convert it: {}".format(sox_command(path, want))
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError(
            "{!r} is not a WAV file (no RIFF/WAVE header). DeepSpeech needs 16-bit mono PCM WAV at {} Hz. {}".format(
                path, want, fix
            )
        )
    offset = 12
    fmt = None
    pcm = None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            pcm = body
            if fmt is not None:
                break
        offset += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16 or pcm is None:
        raise AudioFormatError("{!r} is a damaged WAV file (no 'fmt ' or 'data' chunk). {}".format(path, fix))
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        (tag,) = struct.unpack("<H", fmt[24:26])
    problems = []
    if tag != _PCM:
        problems.append("encoding {} (needs signed-integer PCM)".format(_FORMAT_NAMES.get(tag, "format tag 0x{:04x}".format(tag))))
    if bits != 16:
        problems.append("{} bits per sample (needs 16)".format(bits))
    if channels != 1:
        problems.append("{} channels (needs 1, mono)".format(channels))
    if sample_rate is not None and rate != sample_rate:
        problems.append("{} Hz (the model needs {} Hz)".format(rate, sample_rate))
    if problems:
        raise AudioFormatError(
            "{!r} is not usable audio for DeepSpeech: {}. {}".format(path, ", ".join(problems), fix)
        )
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return WavAudio(samples, rate, channels, bits)


def check_rate(path: str, audio: WavAudio, sample_rate: int) -> None:
    if audio.sample_rate != sample_rate:
        raise AudioFormatError(
            "{!r} is not usable audio for DeepSpeech: {} Hz (the model needs {} Hz). Convert it: {}".format(
                path, audio.sample_rate, sample_rate, sox_command(path, sample_rate)
            )
        )
