"""Pure-Python checks that turn libdeepspeech's terse failures into explained errors.

- model files: which format a file is (TFLite FlatBuffer, TensorFlow protobuf,
  memory-mapped protobuf), whether the loaded library flavour can read it, and
  whether a TFLite file is structurally intact (the 0.7.4 TFLite runtime does not
  verify the FlatBuffer and crashes the process on a truncated or corrupt one);
- scorer files: why ``DS_EnableExternalScorer`` refused one;
- WAV files: 16-bit mono PCM at the model's rate, read without numpy.

Nothing here needs the native library.
"""
from __future__ import annotations

import mmap
import os
import shlex
import struct
import sys
from array import array
from typing import List, NamedTuple, Optional, Tuple, Union

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
    ``unknown``; with ``unknown`` the format is not matched against it). In every
    flavour an empty file is refused, and a TFLite file must be structurally
    intact (``check_tflite_structure``).
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
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ModelFormatError(
            "CreateModel failed: model file {!r} is empty (0 bytes): it is truncated, an interrupted or failed "
            "download or copy left it behind. {}".format(path, _REFETCH),
            0x3000,
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
    if kind == MODEL_TFLITE:
        check_tflite_structure(path)


def precheck_tflite(path: str) -> None:
    """Before the raw ``DS_CreateModel`` of the TFLite library: refuse a TFLite file that would crash it.

    Only a file with the ``TFL3`` identifier is checked (ModelFormatError if it is truncated or
    corrupt); anything else (missing, empty, a directory, a protobuf) is left to the library,
    which refuses it with an error code.
    """
    try:
        if not os.path.isfile(path) or sniff_model(path) != MODEL_TFLITE:
            return
    except OSError:
        return
    check_tflite_structure(path)


def explain_model_code(code: int) -> str:
    """Extra explanation for a DS_CreateModel failure the pre-checks did not foresee."""
    return {
        0x2000: "the alphabet embedded in the model is invalid; re-export the model",
        0x2001: "the model's input/output shapes are not what libdeepspeech 0.7.4 expects",
        0x2003: "the model's metadata_version is too old for libdeepspeech 0.7.4; export it with DeepSpeech 0.7.x",
        0x3000: "the file is not a loadable model for this library (truncated or corrupt?)",
        0x3002: "the TFLite interpreter could not be built from the model (truncated or corrupt file?)",
        0x3005: "the file is not a readable TensorFlow graph (truncated or corrupt?)",
    }.get(code, "")


# --- TFLite FlatBuffer structure -----------------------------------------------------------
#
# A FlatBuffer is addressed by little-endian offsets: the file starts with the uint32 offset
# of the root table (here the TFLite ``Model``; bytes 4..8 hold the identifier ``TFL3``). A
# table starts with an int32 ``soffset``: its vtable lies at ``table - soffset``. A vtable is
# uint16 vtable size, uint16 inline table size, then one uint16 per field: the field's offset
# inside the table (0 = absent). Reference fields (vectors, strings, tables) hold a uint32
# offset relative to the field's own position. A vector is a uint32 element count followed by
# the elements (tables as uint32 offsets relative to each element); a string is a byte vector
# followed by a NUL. Field numbers below are those of TensorFlow Lite's schema (version 3).

_REFETCH = (
    "Fix: re-download or re-stage the model file (compare its size and sha256 with the original; an "
    "interrupted download or copy, or a full disk, leaves such a file)."
)
_TFLITE_SCHEMA_VERSION = 3

# Model
_MODEL_VERSION, _MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_DESCRIPTION, _MODEL_BUFFERS = 0, 1, 2, 3, 4
_MODEL_METADATA_BUFFER, _MODEL_METADATA = 5, 6
# OperatorCode
_OPCODE_CUSTOM_CODE = 1
# SubGraph
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS, _SUBGRAPH_NAME = 0, 1, 2, 3, 4
# Tensor
_TENSOR_SHAPE, _TENSOR_BUFFER, _TENSOR_NAME, _TENSOR_QUANTIZATION = 0, 2, 3, 4
# Operator
_OPERATOR_OPCODE_INDEX, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS = 0, 1, 2
_OPERATOR_BUILTIN_OPTIONS, _OPERATOR_CUSTOM_OPTIONS = 4, 5
# Buffer
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
# Metadata
_METADATA_NAME, _METADATA_BUFFER = 0, 1

# Tensors libdeepspeech 0.7.4 looks up by name in the main subgraph's inputs and outputs; a
# missing one makes it index with -1 and crash.
_DEEPSPEECH_INPUTS = ("input_node", "previous_state_c", "previous_state_h", "input_samples")
_DEEPSPEECH_OUTPUTS = (
    "logits",
    "new_state_c",
    "new_state_h",
    "mfccs",
    "metadata_version",
    "metadata_sample_rate",
    "metadata_feature_win_len",
    "metadata_feature_win_step",
    "metadata_beam_width",
    "metadata_alphabet",
)

_Data = Union[bytes, mmap.mmap]


class _Malformed(Exception):
    """Internal: why a FlatBuffer is not intact."""


class _Reader(object):
    """Bounds-checked little-endian reads from the model file's bytes."""

    def __init__(self, data: _Data, size: int) -> None:
        self.data = data
        self.size = size

    def need(self, position: int, length: int, what: str) -> None:
        if position < 0:
            raise _Malformed("{} would start at byte {}, before the start of the file".format(what, position))
        if position + length > self.size:
            raise _Malformed(
                "{} (bytes {}..{}) lies past the end of the file ({} bytes)".format(
                    what, position, position + length, self.size
                )
            )

    def u16(self, position: int, what: str) -> int:
        self.need(position, 2, what)
        return int(struct.unpack_from("<H", self.data, position)[0])

    def u32(self, position: int, what: str) -> int:
        self.need(position, 4, what)
        return int(struct.unpack_from("<I", self.data, position)[0])

    def i32(self, position: int, what: str) -> int:
        self.need(position, 4, what)
        return int(struct.unpack_from("<i", self.data, position)[0])

    def u64(self, position: int, what: str) -> int:
        self.need(position, 8, what)
        return int(struct.unpack_from("<Q", self.data, position)[0])

    def table(self, position: int, what: str) -> "_Table":
        if position % 4:
            raise _Malformed("{} at byte {} is not 4-byte aligned".format(what, position))
        vtable = position - self.i32(position, what)
        if vtable % 2:
            raise _Malformed("the vtable of {} at byte {} is not 2-byte aligned".format(what, vtable))
        vtable_size = self.u16(vtable, "the vtable of " + what)
        inline_size = self.u16(vtable + 2, "the vtable of " + what)
        if vtable_size < 4 or vtable_size % 2 or inline_size < 4:
            raise _Malformed(
                "the vtable of {} at byte {} is invalid (vtable size {}, table size {})".format(
                    what, vtable, vtable_size, inline_size
                )
            )
        self.need(vtable, vtable_size, "the vtable of " + what)
        self.need(position, inline_size, what)
        count = (vtable_size - 4) // 2
        fields = struct.unpack_from("<{}H".format(count), self.data, vtable + 4) if count else ()
        return _Table(self, position, what, inline_size, tuple(int(f) for f in fields))


class _Table(object):
    """One FlatBuffer table whose vtable and inline part are inside the file."""

    def __init__(self, reader: _Reader, position: int, what: str, inline_size: int, fields: Tuple[int, ...]) -> None:
        self.reader = reader
        self.position = position
        self.what = what
        self.inline_size = inline_size
        self.fields = fields

    def field(self, index: int, width: int) -> Optional[int]:
        """Absolute position of field ``index`` (``width`` bytes inline), or None if absent."""
        offset = self.fields[index] if index < len(self.fields) else 0
        if not offset:
            return None
        if offset < 4 or offset + width > self.inline_size:
            raise _Malformed(
                "field {} of {} at byte {} points outside the table (offset {}, table size {})".format(
                    index, self.what, self.position, offset, self.inline_size
                )
            )
        return self.position + offset

    def uint(self, index: int, default: int, what: str) -> int:
        position = self.field(index, 4)
        return default if position is None else self.reader.u32(position, what)

    def ulong(self, index: int, default: int, what: str) -> int:
        position = self.field(index, 8)
        return default if position is None else self.reader.u64(position, what)

    def target(self, index: int, what: str) -> Optional[int]:
        """Where reference field ``index`` points (None if absent)."""
        position = self.field(index, 4)
        if position is None:
            return None
        return position + self.reader.u32(position, "the offset of " + what)

    def vector(self, index: int, element_size: int, what: str) -> Optional[Tuple[int, int]]:
        """(position of the first element, element count) of vector field ``index``, bounds-checked."""
        start = self.target(index, what)
        if start is None:
            return None
        if start % 4:
            raise _Malformed("{} at byte {} is not 4-byte aligned".format(what, start))
        count = self.reader.u32(start, "the length of " + what)
        span = "{} ({} entries of {} bytes)".format(what, count, element_size)
        self.reader.need(start + 4, count * element_size, span)
        return start + 4, count

    def string(self, index: int, what: str) -> bytes:
        """The bytes of string field ``index`` (empty if absent), bounds-checked."""
        found = self.vector(index, 1, what)
        if found is None:
            return b""
        start, count = found
        self.reader.need(start + count, 1, "the terminating NUL of " + what)
        return bytes(self.reader.data[start : start + count])

    def ints(self, index: int, what: str) -> List[int]:
        found = self.vector(index, 4, what)
        if found is None:
            return []
        start, count = found
        return list(struct.unpack_from("<{}i".format(count), self.reader.data, start))

    def tables(self, index: int, what: str) -> List[_Table]:
        found = self.vector(index, 4, what)
        if found is None:
            return []
        start, count = found
        tables = []
        for number in range(count):
            element = start + 4 * number
            name = "{} {}".format(what, number)
            tables.append(self.reader.table(element + self.reader.u32(element, name), name))
        return tables


def _check_indices(values: List[int], limit: int, allow_optional: bool, what: str, kind: str) -> None:
    low = -1 if allow_optional else 0
    for value in values:
        if not low <= value < limit:
            raise _Malformed("{} refers to {} {}, but the model has {}".format(what, kind, value, limit))


def _check_model_table(reader: _Reader) -> None:
    """Walk the TFLite Model table: every table, vector and string it reaches must be in the file."""
    if reader.size < 8:
        raise _Malformed("the file has only {} bytes, less than a FlatBuffer header".format(reader.size))
    root = reader.u32(0, "the root table offset")
    if root < 8:
        raise _Malformed("the root table offset {} points into the file header".format(root))
    model = reader.table(root, "the Model (root) table")
    version = model.uint(_MODEL_VERSION, 0, "the schema version")
    if version != _TFLITE_SCHEMA_VERSION:
        raise _Malformed(
            "the schema version is {} (TFLite files are version {})".format(version, _TFLITE_SCHEMA_VERSION)
        )

    buffers = model.tables(_MODEL_BUFFERS, "buffer")
    if model.field(_MODEL_BUFFERS, 4) is None or not buffers:
        raise _Malformed("the Model table has no buffers")
    for number, buffer in enumerate(buffers):
        buffer.vector(_BUFFER_DATA, 1, "the data of buffer {}".format(number))
        offset = buffer.ulong(_BUFFER_OFFSET, 0, "the data offset of buffer {}".format(number))
        if offset > 1:  # data stored after the FlatBuffer (large-model layout)
            length = buffer.ulong(_BUFFER_SIZE, 0, "the data size of buffer {}".format(number))
            reader.need(offset, length, "the external data of buffer {}".format(number))

    opcodes = model.tables(_MODEL_OPERATOR_CODES, "operator code")
    for number, opcode in enumerate(opcodes):
        opcode.string(_OPCODE_CUSTOM_CODE, "the custom code name of operator code {}".format(number))

    subgraphs = model.tables(_MODEL_SUBGRAPHS, "subgraph")
    if not subgraphs:
        raise _Malformed("the Model table has no subgraph")
    for graph_number, graph in enumerate(subgraphs):
        where = "subgraph {}".format(graph_number)
        tensors = graph.tables(_SUBGRAPH_TENSORS, where + " tensor")
        names: List[bytes] = []
        for number, tensor in enumerate(tensors):
            name = "{} tensor {}".format(where, number)
            tensor.vector(_TENSOR_SHAPE, 4, "the shape of " + name)
            names.append(tensor.string(_TENSOR_NAME, "the name of " + name))
            quantization = tensor.target(_TENSOR_QUANTIZATION, "the quantization of " + name)
            if quantization is not None:
                reader.table(quantization, "the quantization of " + name)
            buffer_index = tensor.uint(_TENSOR_BUFFER, 0, "the buffer index of " + name)
            _check_indices([buffer_index], len(buffers), False, name, "buffer")
        for field, label, required in (
            (_SUBGRAPH_INPUTS, "input", _DEEPSPEECH_INPUTS),
            (_SUBGRAPH_OUTPUTS, "output", _DEEPSPEECH_OUTPUTS),
        ):
            what = "the {}s of {}".format(label, where)
            indices = graph.ints(field, what)
            _check_indices(indices, len(tensors), False, what, "tensor")
            if graph_number == 0:
                present = {names[index] for index in indices}
                for wanted in required:
                    if wanted.encode("ascii") not in present:
                        raise _Malformed(
                            "the model has no {} tensor named '{}', which libdeepspeech 0.7.4 looks up by name "
                            "and crashes without (a corrupt file, or not a model exported by DeepSpeech "
                            "0.7.x)".format(label, wanted)
                        )
        for number, operator in enumerate(graph.tables(_SUBGRAPH_OPERATORS, where + " operator")):
            name = "{} operator {}".format(where, number)
            opcode_index = operator.uint(_OPERATOR_OPCODE_INDEX, 0, "the opcode index of " + name)
            _check_indices([opcode_index], len(opcodes), False, name, "operator code")
            for field, label in ((_OPERATOR_INPUTS, "inputs"), (_OPERATOR_OUTPUTS, "outputs")):
                what = "the {} of {}".format(label, name)
                indices = operator.ints(field, what)
                _check_indices(indices, len(tensors), True, what, "tensor")
                if field == _OPERATOR_OUTPUTS and not any(index >= 0 for index in indices):
                    raise _Malformed("{} has no output tensor (every TFLite operator has one)".format(name))
            options = operator.target(_OPERATOR_BUILTIN_OPTIONS, "the options of " + name)
            if options is not None:
                reader.table(options, "the options of " + name)
            operator.vector(_OPERATOR_CUSTOM_OPTIONS, 1, "the custom options of " + name)
        graph.string(_SUBGRAPH_NAME, "the name of " + where)

    model.string(_MODEL_DESCRIPTION, "the model description")
    model.vector(_MODEL_METADATA_BUFFER, 4, "the metadata buffer list")
    for number, entry in enumerate(model.tables(_MODEL_METADATA, "metadata entry")):
        entry.string(_METADATA_NAME, "the name of metadata entry {}".format(number))
        index = entry.uint(_METADATA_BUFFER, 0, "the buffer of metadata entry {}".format(number))
        _check_indices([index], len(buffers), False, "metadata entry {}".format(number), "buffer")


def check_tflite_structure(path: str) -> None:
    """Raise ModelFormatError unless the TFLite FlatBuffer at ``path`` is structurally intact.

    libdeepspeech 0.7.4's TFLite runtime maps the file and follows its offsets without
    verifying them, so a truncated or corrupt model crashes the process inside
    ``DS_CreateModel``. This follows the same offsets first, with bounded reads: the root
    table, every vtable, the Model's ``operator_codes``, ``subgraphs`` and ``buffers`` vectors,
    each buffer's data, each subgraph's tensors and operators (and the indices between them),
    and the input/output tensors the library looks up by name. The file is memory-mapped, so
    only the pages holding tables are read, not the weights.
    """
    problem: Optional[str] = None
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                problem = "the file is empty (0 bytes)"
            else:
                data: _Data
                try:
                    data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError):  # a file system without mmap: read it
                    data = handle.read()
                try:
                    _check_model_table(_Reader(data, size))
                except _Malformed as exc:
                    problem = str(exc)
                finally:
                    if isinstance(data, mmap.mmap):
                        data.close()
    except OSError as exc:
        raise ModelNotFoundError(
            "CreateModel failed: cannot read model file {!r}: {}".format(path, exc.strerror or exc), None
        ) from None
    if problem is not None:
        raise ModelFormatError(
            "CreateModel failed: model {!r} is a truncated or corrupt TFLite file ({} bytes): {}. The "
            "libdeepspeech 0.7.4 TFLite runtime does not verify model files and would crash the process "
            "(segmentation fault) loading it. {}".format(path, size, problem, _REFETCH),
            0x3000,
        )


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
