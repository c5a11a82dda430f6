"""Model-format, WAV and scorer checks (pure Python, no native library)."""
from __future__ import annotations

import os
import shlex
import shutil
import struct
import subprocess
from array import array
from typing import Any, Dict, List, Tuple, Union

import pytest

import dscompat_support as support
from dscompat_support import write_pcm_wav, write_raw_wav
from deepspeech import _checks
from deepspeech._errors import AudioFormatError, ModelFormatError, ModelNotFoundError

FIXTURE_TFLITE = os.path.join(support.FIXTURE, "output_graph.tflite")


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
    shutil.copy(FIXTURE_TFLITE, tfl)  # a real model: a bare 'TFL3' header is refused as corrupt (below)
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


# --- TFLite structure (the 0.7.4 TFLite runtime segfaults on a truncated/corrupt file) -----

def _assert_refused_as_corrupt(path: str, *fragments: str) -> str:
    """The file is refused (by the pure-Python checks alone) with the clear, complete message."""
    for check in (
        lambda: _checks.check_tflite_structure(path),
        lambda: _checks.check_model_file(path, "tflite", "/x/libdeepspeech.so"),
        lambda: _checks.check_model_file(path, "unknown", "/x/libdeepspeech.so"),
        lambda: _checks.precheck_tflite(path),
    ):
        with pytest.raises(ModelFormatError) as caught:
            check()
        message = str(caught.value)
        assert isinstance(caught.value, RuntimeError) and caught.value.code == 0x3000
        assert repr(path) in message  # names the file
        assert "truncated or corrupt TFLite file" in message and "crash" in message
        assert "re-download or re-stage the model file" in message and "sha256" in message
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message, (fragment, message)
    return message


def _fixture_bytes() -> bytes:
    with open(FIXTURE_TFLITE, "rb") as handle:
        return handle.read()


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def test_intact_fixture_model_passes_the_structure_check():
    _checks.check_tflite_structure(FIXTURE_TFLITE)
    _checks.check_model_file(FIXTURE_TFLITE, "tflite", "lib")
    _checks.check_model_file(FIXTURE_TFLITE, "unknown", "lib")
    _checks.precheck_tflite(FIXTURE_TFLITE)


@pytest.mark.fault
@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_truncated_fixture_model_is_refused(tmp_path, fraction):
    data = _fixture_bytes()
    path = _write(str(tmp_path / "output_graph.tflite"), data[: int(len(data) * fraction)])
    message = _assert_refused_as_corrupt(path, "past the end of the file")
    assert "({} bytes)".format(int(len(data) * fraction)) in message


@pytest.mark.fault
def test_model_cut_at_any_point_is_refused(tmp_path):
    data = _fixture_bytes()
    path = str(tmp_path / "cut.tflite")
    cuts = sorted(set(list(range(8, len(data), len(data) // 97)) + list(range(len(data) - 64, len(data)))))
    for cut in cuts:
        _write(path, data[:cut])
        with pytest.raises(ModelFormatError, match="truncated or corrupt"):
            _checks.check_tflite_structure(path)


@pytest.mark.fault
@pytest.mark.parametrize(
    "root,fragment",
    [
        (0xFFFFFF00, "the Model (root) table (bytes 4294967040..4294967044) lies past the end of the file"),
        (0, "the root table offset 0 points into the file header"),
        (None, "is not 4-byte aligned"),  # the real offset + 1
    ],
    ids=["past-the-end", "into-the-header", "misaligned"],
)
def test_corrupted_root_offset_is_refused(tmp_path, root, fragment):
    data = bytearray(_fixture_bytes())
    (real,) = struct.unpack_from("<I", data, 0)
    struct.pack_into("<I", data, 0, real + 1 if root is None else root)
    _assert_refused_as_corrupt(_write(str(tmp_path / "output_graph.tflite"), bytes(data)), fragment)


@pytest.mark.fault
def test_zero_length_model_is_refused(tmp_path):
    path = _write(str(tmp_path / "output_graph.tflite"), b"")
    for flavour in ("tflite", "tensorflow", "unknown"):
        with pytest.raises(ModelFormatError) as caught:
            _checks.check_model_file(path, flavour, "/x/libdeepspeech.so")
        message = str(caught.value)
        assert repr(path) in message and "is empty (0 bytes)" in message and "truncated" in message
        assert "re-download or re-stage the model file" in message and caught.value.code == 0x3000
    with pytest.raises(ModelFormatError, match="the file is empty"):
        _checks.check_tflite_structure(path)


def test_bare_tflite_header_is_refused(tmp_path):
    # 'TFL3' at byte 4 and nothing behind it: the official TFLite library segfaults on it
    path = str(tmp_path / "stub.tflite")
    support.write_tflite_header(path)
    _assert_refused_as_corrupt(path, "the Model (root) table")


@pytest.mark.fault
def test_corrupt_tensor_name_is_refused(tmp_path):
    # an intact FlatBuffer, but the library looks this output up by name and crashes without it
    data = _fixture_bytes()
    assert b"metadata_feature_win_step" in data
    broken = data.replace(b"metadata_feature_win_step", b"metadata_feature_win_stXp")
    path = _write(str(tmp_path / "output_graph.tflite"), broken)
    _assert_refused_as_corrupt(path, "no output tensor named 'metadata_feature_win_step'")


class _FlatBuilder(object):
    """Writes a TFLite FlatBuffer front to back, parents before children (every offset positive).

    All table fields are 4 bytes wide: an int is a scalar, a str names the object the field
    points to (placed later). ``at`` records where each named object was placed.
    """

    def __init__(self) -> None:
        self.out = bytearray(b"\0\0\0\0TFL3")
        self.pending: Dict[str, int] = {"model": 0}
        self.at: Dict[str, int] = {}

    def _place(self, name: str) -> int:
        self.out += b"\0" * (-len(self.out) % 4)
        position = len(self.out)
        field = self.pending.pop(name)
        struct.pack_into("<I", self.out, field, position - field)
        self.at[name] = position
        return position

    def table(self, name: str, fields: Dict[int, Union[int, str]]) -> None:
        count = max(fields) + 1 if fields else 0
        self.out += b"\0" * (-len(self.out) % 4)
        vtable = len(self.out)
        self.out += struct.pack("<HH", 4 + 2 * count, 4 + 4 * count)
        self.out += b"".join(struct.pack("<H", 4 + 4 * i if i in fields else 0) for i in range(count))
        position = self._place(name)
        self.out += struct.pack("<i", position - vtable) + bytes(4 * count)
        for index, value in fields.items():
            if isinstance(value, str):
                self.pending[value] = position + 4 + 4 * index
            else:
                struct.pack_into("<I", self.out, position + 4 + 4 * index, value)

    def tables(self, name: str, children: List[str]) -> None:
        position = self._place(name)
        self.out += struct.pack("<I", len(children)) + bytes(4 * len(children))
        for number, child in enumerate(children):
            self.pending[child] = position + 4 + 4 * number

    def ints(self, name: str, values: List[int]) -> None:
        self._place(name)
        self.out += struct.pack("<I{}i".format(len(values)), len(values), *values)

    def blob(self, name: str, data: bytes, string: bool = False) -> None:
        self._place(name)
        self.out += struct.pack("<I", len(data)) + data + (b"\0" if string else b"")


DEEPSPEECH_INPUTS = ["input_node", "previous_state_c", "previous_state_h", "input_samples"]
DEEPSPEECH_OUTPUTS = [
    "logits", "new_state_c", "new_state_h", "mfccs", "metadata_version", "metadata_sample_rate",
    "metadata_feature_win_len", "metadata_feature_win_step", "metadata_beam_width", "metadata_alphabet",
]


def _mini_model() -> Tuple[bytearray, Dict[str, int]]:
    """A tiny hand-built TFLite model: 1 subgraph with DeepSpeech's 14 named tensors, 1 operator,
    2 buffers (buffer 1 holds 4 bytes). Structurally valid; not runnable."""
    names = DEEPSPEECH_INPUTS + DEEPSPEECH_OUTPUTS
    b = _FlatBuilder()
    b.table("model", {0: 3, 1: "opcodes", 2: "subgraphs", 3: "description", 4: "buffers"})
    b.tables("opcodes", ["opcode0"])
    b.table("opcode0", {1: "custom_code"})
    b.blob("custom_code", b"Mfcc", string=True)
    b.tables("subgraphs", ["graph0"])
    b.table("graph0", {0: "tensors", 1: "inputs", 2: "outputs", 3: "operators"})
    b.tables("tensors", ["tensor{}".format(i) for i in range(len(names))])
    for number, name in enumerate(names):
        b.table("tensor{}".format(number), {0: "shape{}".format(number), 2: 1 if number == 4 else 0,
                                            3: "name{}".format(number)})
        b.ints("shape{}".format(number), [1])
        b.blob("name{}".format(number), name.encode("ascii"), string=True)
    b.ints("inputs", list(range(4)))
    b.ints("outputs", list(range(4, len(names))))
    b.tables("operators", ["op0"])
    b.table("op0", {0: 0, 1: "op_inputs", 2: "op_outputs"})
    b.ints("op_inputs", [0, -1])  # -1: an optional input left out
    b.ints("op_outputs", [4])
    b.blob("description", b"hand-built", string=True)
    b.tables("buffers", ["buffer0", "buffer1"])
    b.table("buffer0", {})
    b.table("buffer1", {0: "data1"})
    b.blob("data1", b"\x01\x02\x03\x04")
    assert not b.pending
    return b.out, b.at


def _vtable(data: bytearray, table: int) -> int:
    return table - struct.unpack_from("<i", data, table)[0]


def _field(data: bytearray, table: int, index: int) -> int:
    """Position of field ``index`` of the table at ``table`` (all fields present and 4 bytes wide)."""
    (offset,) = struct.unpack_from("<H", data, _vtable(data, table) + 4 + 2 * index)
    return table + offset


def test_hand_built_model_passes(tmp_path):
    data, _ = _mini_model()
    _checks.check_tflite_structure(_write(str(tmp_path / "mini.tflite"), bytes(data)))


def _huge(at: str) -> Any:
    return lambda data, pos: struct.pack_into("<I", data, pos[at], 1000000)


_MUTATIONS = {
    "model-vtable-outside-the-file": (
        lambda data, pos: struct.pack_into("<i", data, pos["model"], -len(data)),
        "the vtable of the Model (root) table",
    ),
    "model-vtable-before-the-file": (
        lambda data, pos: struct.pack_into("<i", data, pos["model"], pos["model"] + 64),
        "the vtable of the Model (root) table would start at byte -64",
    ),
    "model-field-outside-its-table": (
        lambda data, pos: struct.pack_into("<H", data, _vtable(data, pos["model"]) + 2, 8),  # table size 8
        "field 4 of the Model (root) table at byte {model} points outside the table (offset 20, table size 8)",
    ),
    "subgraphs-vector-past-the-end": (_huge("subgraphs"), "subgraph (1000000 entries of 4 bytes)"),
    "buffers-vector-past-the-end": (_huge("buffers"), "buffer (1000000 entries of 4 bytes)"),
    "operator-codes-vector-past-the-end": (_huge("opcodes"), "operator code (1000000 entries of 4 bytes)"),
    "subgraphs-offset-past-the-end": (
        lambda data, pos: struct.pack_into("<I", data, _field(data, pos["model"], 2), len(data)),
        "the length of subgraph",
    ),
    "buffer-data-past-the-end": (_huge("data1"), "the data of buffer 1 (1000000 entries of 1 bytes)"),
    "tensor-name-past-the-end": (_huge("name3"), "the name of subgraph 0 tensor 3"),
    "tensor-buffer-index": (
        lambda data, pos: struct.pack_into("<I", data, _field(data, pos["tensor4"], 2), 9),
        "subgraph 0 tensor 4 refers to buffer 9, but the model has 2",
    ),
    "operator-code-index": (
        lambda data, pos: struct.pack_into("<I", data, _field(data, pos["op0"], 0), 7),
        "subgraph 0 operator 0 refers to operator code 7, but the model has 1",
    ),
    "operator-input-index": (
        lambda data, pos: struct.pack_into("<i", data, pos["op_inputs"] + 4, 99),
        "the inputs of subgraph 0 operator 0 refers to tensor 99, but the model has 14",
    ),
    "operator-without-outputs": (
        lambda data, pos: struct.pack_into("<I", data, pos["op_outputs"], 0),
        "subgraph 0 operator 0 has no output tensor",
    ),
    "schema-version": (
        lambda data, pos: struct.pack_into("<I", data, _field(data, pos["model"], 0), 77),
        "the schema version is 77",
    ),
    "no-subgraph": (lambda data, pos: struct.pack_into("<I", data, pos["subgraphs"], 0), "has no subgraph"),
    "missing-deepspeech-input": (
        lambda data, pos: struct.pack_into("<i", data, pos["inputs"] + 4, 5),
        "no input tensor named 'input_node'",
    ),
}


@pytest.mark.fault
@pytest.mark.parametrize("mutation", sorted(_MUTATIONS))
def test_hand_built_model_corruptions_are_refused(tmp_path, mutation):
    data, positions = _mini_model()
    mutate, fragment = _MUTATIONS[mutation]
    mutate(data, positions)
    _assert_refused_as_corrupt(_write(str(tmp_path / "output_graph.tflite"), bytes(data)), fragment.format(**positions))


class _FakeLibrary(object):
    """Stands in for libdeepspeech: records DS_CreateModel calls."""

    def __init__(self) -> None:
        self.created: List[bytes] = []

    def DS_CreateModel(self, path: bytes, handle: Any) -> int:
        self.created.append(path)
        return 0x3000


def _fake_library(monkeypatch: Any, flavour: str) -> _FakeLibrary:
    from deepspeech import _library, impl

    fake = _FakeLibrary()
    info = _library.LibraryInfo("/fake/libdeepspeech.so", flavour, _library.ElfInfo(64, "x86_64"))
    monkeypatch.setattr(impl, "_lib", fake)
    monkeypatch.setattr(impl, "_lib_info", info)
    return fake


@pytest.mark.fault
def test_raw_create_model_refuses_a_corrupt_tflite_before_the_library(tmp_path, monkeypatch):
    from deepspeech import impl

    data = _fixture_bytes()
    cut = _write(str(tmp_path / "cut.tflite"), data[: len(data) // 2])
    fake = _fake_library(monkeypatch, "tflite")
    with pytest.raises(ModelFormatError, match="truncated or corrupt TFLite file"):
        impl.CreateModel(cut)
    assert fake.created == []  # the library never saw it
    # intact models, protobufs, missing and empty files still go to the library (it answers with a code)
    pb = str(tmp_path / "m.pb")
    support.write_graphdef(pb)
    empty = _write(str(tmp_path / "empty.tflite"), b"")
    for path in (FIXTURE_TFLITE, pb, str(tmp_path / "missing.tflite"), empty):
        assert impl.CreateModel(path) == (0x3000, None)
    assert fake.created == [os.fsencode(p) for p in (FIXTURE_TFLITE, pb, str(tmp_path / "missing.tflite"), empty)]
    # the TensorFlow build reads a .tflite as a protobuf and fails cleanly (0x3005): left to it
    fake = _fake_library(monkeypatch, "tensorflow")
    assert impl.CreateModel(cut) == (0x3000, None) and fake.created == [os.fsencode(cut)]


@pytest.mark.fault
def test_model_and_client_report_a_truncated_model_in_one_line(tmp_path, monkeypatch, capsys):
    import deepspeech
    from deepspeech import client

    data = _fixture_bytes()
    cut = _write(str(tmp_path / "output_graph.tflite"), data[: int(len(data) * 0.9)])
    fake = _fake_library(monkeypatch, "tflite")
    with pytest.raises(ModelFormatError, match="truncated or corrupt"):
        deepspeech.Model(cut)
    wav = str(tmp_path / "a.wav")
    write_pcm_wav(wav)
    assert client.main(["--model", cut, "--audio", wav]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("deepspeech: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert repr(cut) in lines[0] and "truncated or corrupt TFLite file" in lines[0]
    assert "re-download or re-stage the model file" in lines[0]
    assert fake.created == []


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
