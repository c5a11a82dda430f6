"""DeepSpeech 0.7.4 external scorer packager (stdlib only).

A 0.7.4 ``.scorer`` file is a KenLM binary (built with ``build_binary -v trie``) followed by a
small header and the vocabulary as an OpenFST 1.6.7 ``ConstFst`` (an acceptor over alphabet
labels, determinized and minimized). This module writes that file byte-for-byte as upstream's
``data/lm/generate_package.py`` (through the ds_ctcdecoder 0.7.4 extension) does, but:

* refuses an LM that still carries its vocabulary strings (built without ``-v``), which the
  upstream tool packages into a file the runtime cannot load;
* refuses an alphabet without a space label, with CRLF line ends, or whose last line lacks its
  newline (upstream would silently cut that label's last character);
* reports words with characters outside the alphabet instead of dropping them silently;
* writes a temporary file beside the target, re-reads and validates it completely, and only
  then renames it into place (the 0.7.4 loader accepts a truncated file and crashes later).

Layout written after the LM (little-endian)::

    int32 'TRIE' (bytes "EIRT"), int32 version 6, uint8 utf8 flag,
    float64 alpha, float64 beta            (both rounded through float32)
    ConstFst: int32 magic 2125659606, string "const", string "standard", int32 version 1,
              int32 flags 4 (aligned), uint64 properties, int64 start, int64 nstates,
              int64 narcs, zero pad to an absolute file offset multiple of 16,
              nstates x {float32 final, uint32 pos, uint32 narcs, uint32 0, uint32 0},
              pad to 16, narcs x {int32 ilabel, int32 olabel, float32 0.0, int32 next}
"""

from __future__ import annotations

import argparse
import hashlib
import math
import mmap
import os
import struct
import sys
import tempfile
from collections import OrderedDict, deque
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

# --- constants of the format -----------------------------------------------------------------

KENLM_MAGIC = b"mmap lm http://kheafield.com/code format version 5\n\0"
KENLM_MAGIC_INCOMPLETE = b"mmap lm http://kheafield.com/code incomplete\n"
KENLM_MAGIC_PREFIX = b"mmap lm http://kheafield.com/code"
KENLM_HAS_VOCAB_OFFSET = 0x64
KENLM_MODEL_TYPES = {0: "probing", 1: "rest_probing", 2: "trie", 3: "quant_trie",
                     4: "array_trie", 5: "quant_array_trie"}

TRIE_MAGIC = b"EIRT"  # int32 'TRIE' written little-endian
TRIE_VERSION = 6
FST_MAGIC = 2125659606
FST_TYPE = b"const"
ARC_TYPE = b"standard"
FST_ALIGNED_VERSION = 1
FST_FLAG_ALIGNED = 4
FST_ALIGN = 16
STATE_BYTES = 20
ARC_BYTES = 16
INF = float("inf")

SPECIAL_TOKENS = ("<s>", "<unk>", "</s>")

# OpenFST property bits (properties.h, 1.6.7).
P_EXPANDED = 0x1
P_ACCEPTOR, P_NOT_ACCEPTOR = 0x10000, 0x20000
P_IDET, P_NON_IDET = 0x40000, 0x80000
P_ODET, P_NON_ODET = 0x100000, 0x200000
P_EPS, P_NO_EPS = 0x400000, 0x800000
P_IEPS, P_NO_IEPS = 0x1000000, 0x2000000
P_OEPS, P_NO_OEPS = 0x4000000, 0x8000000
P_ISORTED, P_NOT_ISORTED = 0x10000000, 0x20000000
P_OSORTED, P_NOT_OSORTED = 0x40000000, 0x80000000
P_WEIGHTED, P_UNWEIGHTED = 0x100000000, 0x200000000
P_CYCLIC, P_ACYCLIC = 0x400000000, 0x800000000
P_INIT_CYCLIC, P_INIT_ACYCLIC = 0x1000000000, 0x2000000000
P_TOPSORTED, P_NOT_TOPSORTED = 0x4000000000, 0x8000000000
P_ACCESSIBLE, P_NOT_ACCESSIBLE = 0x10000000000, 0x20000000000
P_COACCESSIBLE, P_NOT_COACCESSIBLE = 0x40000000000, 0x80000000000
P_STRING, P_NOT_STRING = 0x100000000000, 0x200000000000
P_WEIGHTED_CYCLES, P_UNWEIGHTED_CYCLES = 0x400000000000, 0x800000000000


class ScorerError(Exception):
    """Bad input or a broken scorer; the message names the file/value and the fix."""


# How to repair a scorer file that is cut short or damaged (appended to such errors).
SCORER_FIX = ("copy or download the scorer again (compare its size and sha256 with the original) "
              "or rebuild it with voice-scorer-package")


def _file_error(what: str, path: str, exc: OSError) -> ScorerError:
    """A ScorerError for an OSError while opening/reading ``path`` (one line, with the fix)."""
    if isinstance(exc, FileNotFoundError):
        return ScorerError("%s %s does not exist: check the path (a DeepSpeech 0.7.4 scorer is a "
                           "single .scorer file, e.g. kenlm.scorer beside the model)" % (what, path))
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        try:
            inside = sorted(entry.name for entry in Path(path).glob("*.scorer"))
        except OSError:
            inside = []
        hint = (" (it holds %s)" % ", ".join(inside[:3])) if inside else ""
        return ScorerError("%s %s is a directory, not a file: give the path of the .scorer file "
                           "inside it%s" % (what, path, hint))
    if isinstance(exc, PermissionError):
        return ScorerError("%s %s is not readable (permission denied): fix its permissions or run "
                           "as a user who may read it" % (what, path))
    return ScorerError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))


# --- alphabet ----------------------------------------------------------------------------------

class Alphabet(NamedTuple):
    path: str
    labels: List[str]  # index -> label text, as the model's alphabet serializes them

    @property
    def space_label(self) -> int:
        """Index of the space label (the last one if listed twice, as upstream)."""
        found = [i for i, label in enumerate(self.labels) if label == " "]
        return found[-1]

    def char_map(self) -> Dict[str, int]:
        """Label text -> FST label (index + 1; 0 is epsilon). Later duplicates win."""
        mapping: Dict[str, int] = {}
        for index, label in enumerate(self.labels):
            mapping[label] = index + 1
        return mapping


def serialize_alphabet(alphabet: Alphabet) -> bytes:
    """The alphabet as DeepSpeech 0.7.4 models embed it (``metadata_alphabet``): uint16 count,
    then per label uint16 index, uint16 byte length, UTF-8 bytes."""
    parts = [struct.pack("<H", len(alphabet.labels))]
    for index, label in enumerate(alphabet.labels):
        encoded = label.encode("utf-8")
        parts.append(struct.pack("<HH", index, len(encoded)) + encoded)
    return b"".join(parts)


def model_has_alphabet(model_path: "os.PathLike[str] | str", alphabet: Alphabet) -> bool:
    """True if the model file (.tflite, .pb or .pbmm) embeds exactly this alphabet."""
    needle = serialize_alphabet(alphabet)
    with open(str(model_path), "rb") as handle:
        if os.fstat(handle.fileno()).st_size < len(needle):
            return False
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(needle) != -1


def read_alphabet(path: "os.PathLike[str] | str") -> Alphabet:
    """Parse a DeepSpeech alphabet file the way the 0.7.4 tools do, refusing risky files.

    One label per line; lines starting with ``#`` are comments; ``\\#`` stands for ``#``; the
    space label is a line holding one space.
    """
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ScorerError("cannot read alphabet %s: %s" % (path, exc.strerror or exc)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScorerError("alphabet %s is not UTF-8 (byte %d): save it as UTF-8"
                          % (path, exc.start)) from exc
    if "\r" in text:
        line_no = text[: text.index("\r")].count("\n") + 1
        raise ScorerError(
            "alphabet %s has a carriage return (CRLF line ends?) on line %d: the runtime would "
            "make '\\r' part of every label; convert it to LF line ends (e.g. dos2unix)"
            % (path, line_no))
    if not text:
        raise ScorerError("alphabet %s is empty" % path)
    if not text.endswith("\n"):
        last = text.rsplit("\n", 1)[-1]
        raise ScorerError(
            "alphabet %s: the last line %r has no newline; upstream tools would cut its last "
            "character. Add a newline at the end of the file" % (path, last))
    labels: List[str] = []
    for line in text[:-1].split("\n"):
        if line.startswith("\\#"):
            line = "#"
        elif line.startswith("#"):
            continue
        labels.append(line)
    if not labels:
        raise ScorerError("alphabet %s has no labels (only comments)" % path)
    if len(labels) > 0xFFFF:
        raise ScorerError("alphabet %s has %d labels; the format allows 65535" % (path, len(labels)))
    if " " not in labels:
        raise ScorerError(
            "alphabet %s has no space label (a line holding exactly one space): without it the "
            "scorer cannot mark word ends. Use the model's own alphabet.txt" % path)
    return Alphabet(path, labels)


# --- KenLM binary ------------------------------------------------------------------------------

class KenLMHeader(NamedTuple):
    order: int
    model_type: str
    has_vocabulary: bool
    counts: List[int]


def read_kenlm_header(data: bytes, path: str = "<lm>") -> KenLMHeader:
    """Check that ``data`` starts like a KenLM binary usable in a 0.7.4 scorer."""
    if data.startswith(KENLM_MAGIC_INCOMPLETE):
        raise ScorerError("%s is an incomplete KenLM binary (build_binary failed or was "
                          "interrupted): rebuild it" % path)
    if not data:
        raise ScorerError("%s is empty (0 bytes): the file was cut off or never written; copy it "
                          "again or rebuild it" % path)
    if len(data) < len(KENLM_MAGIC) and KENLM_MAGIC.startswith(bytes(data)):
        raise ScorerError("%s is truncated: it ends after %d bytes, inside the KenLM header; copy "
                          "it again or rebuild it" % (path, len(data)))
    if not data.startswith(KENLM_MAGIC):
        hint = ""
        stripped = data.lstrip()
        if stripped.startswith(b"\\data\\"):
            hint = " It is an ARPA text file: convert it with `build_binary -v trie -a 255 -q 8 " \
                   "lm.arpa lm.binary`."
        elif data.startswith(KENLM_MAGIC_PREFIX):
            hint = " It is a KenLM binary of another format version: rebuild it with KenLM."
        raise ScorerError("%s is not a KenLM binary language model.%s" % (path, hint))
    if len(data) < 108:
        raise ScorerError("%s is truncated (KenLM header incomplete, %d bytes): copy it again or "
                          "rebuild it" % (path, len(data)))
    order = data[88]
    (model_type,) = struct.unpack_from("<i", data, 96)
    has_vocab = data[KENLM_HAS_VOCAB_OFFSET]
    if has_vocab:
        raise ScorerError(
            "%s was built with its vocabulary strings included (KenLM header byte 0x64 = %d): "
            "the scorer section must follow the LM's search data directly, and the 0.7.4 runtime "
            "rejects such a package. Rebuild it with `build_binary -v trie -a 255 -q 8 lm.arpa "
            "%s` (-v leaves the vocabulary out)." % (path, has_vocab, os.path.basename(path)))
    if model_type not in KENLM_MODEL_TYPES:
        raise ScorerError("%s has an unknown KenLM model type %d" % (path, model_type))
    if order < 1 or len(data) < 108 + 8 * order:
        raise ScorerError("%s has an invalid KenLM header (order %d)" % (path, order))
    counts = list(struct.unpack_from("<%dQ" % order, data, 108))
    return KenLMHeader(order, KENLM_MODEL_TYPES[model_type], False, counts)


# --- vocabulary --------------------------------------------------------------------------------

def read_vocabulary(path: "os.PathLike[str] | str") -> Tuple[List[str], bool]:
    """Return the unique whitespace-separated words (first-seen order) and upstream's
    "looks character based" flag (every word is at most one character)."""
    path = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ScorerError("cannot read vocabulary %s: %s" % (path, exc.strerror or exc)) from exc
    except UnicodeDecodeError as exc:
        raise ScorerError("vocabulary %s is not UTF-8 (byte offset %d)" % (path, exc.start)) from exc
    words: "OrderedDict[str, None]" = OrderedDict()
    char_based = True
    for line in text.splitlines():
        for word in line.split():
            words[word] = None
            if len(word) > 1:
                char_based = False
    return list(words), char_based


class UnknownWord(NamedTuple):
    word: str
    bad: List[str]  # the characters (or, in UTF-8 mode, bytes) the alphabet lacks


def encode_words(words: Iterable[str], alphabet: Optional[Alphabet], utf8: bool
                 ) -> Tuple[List[List[int]], List[UnknownWord]]:
    """Turn words into FST label sequences; collect the words that cannot be spelled."""
    sequences: List[List[int]] = []
    unknown: List[UnknownWord] = []
    if utf8:
        for word in words:
            if word in SPECIAL_TOKENS:
                continue
            encoded = word.encode("utf-8")
            if b"\0" in encoded:
                unknown.append(UnknownWord(word, ["\\x00"]))
                continue
            sequences.append(list(encoded))  # label = byte value; no space label appended
        return sequences, unknown
    assert alphabet is not None
    char_map = alphabet.char_map()
    space = alphabet.space_label + 1
    for word in words:
        if word in SPECIAL_TOKENS:
            continue
        labels = []
        bad: List[str] = []
        for char in word:
            label = char_map.get(char)
            if label is None:
                if char not in bad:
                    bad.append(char)
            else:
                labels.append(label)
        if bad:
            unknown.append(UnknownWord(word, bad))
            continue
        labels.append(space)
        sequences.append(labels)
    return sequences, unknown


# --- the dictionary FST ------------------------------------------------------------------------

class Fst(NamedTuple):
    final: List[bool]
    arcs: List[List[Tuple[int, int]]]  # per state: (label, next state), sorted by label


def build_dictionary(sequences: Sequence[Sequence[int]]) -> Fst:
    """The minimal deterministic acceptor of ``sequences``, numbered as OpenFST 1.6.7 numbers
    it after ``Determinize`` + ``Minimize`` (what upstream's fill_dictionary does).

    Determinizing the per-word chains gives the prefix tree with states in breadth-first order
    and arcs sorted by label. The acyclic (Revuz) minimizer then groups states by height and
    right language; of each group the class holding the group's highest state keeps that state,
    every other class keeps its lowest. Surviving states keep their relative order.
    """
    if not sequences:
        raise ScorerError("no word of the vocabulary can be spelled with the alphabet: an empty "
                          "scorer would accept nothing")
    # Prefix tree, nested dicts.
    root: Dict[int, dict] = {}
    END = -1  # key marking a final node
    for seq in sequences:
        node = root
        for label in seq:
            child = node.get(label)
            if child is None:
                child = {}
                node[label] = child
            node = child
        node[END] = None  # type: ignore[assignment]
    # Breadth-first numbering, children by label.
    final: List[bool] = []
    arcs: List[List[Tuple[int, int]]] = []
    queue = deque([root])
    next_id = 1
    while queue:
        node = queue.popleft()
        final.append(END in node)
        out: List[Tuple[int, int]] = []
        for label in sorted(k for k in node if k != END):
            out.append((label, next_id))
            next_id += 1
            queue.append(node[label])
        arcs.append(out)
    n = len(final)
    # Heights (longest path to a state without arcs) and right-language classes, children first.
    height = [0] * n
    cls = [0] * n
    signatures: Dict[tuple, int] = {}
    for s in range(n - 1, -1, -1):
        out = arcs[s]
        if out:
            height[s] = 1 + max(height[t] for _, t in out)
        sig = (final[s], tuple((label, cls[t]) for label, t in out))
        c = signatures.get(sig)
        if c is None:
            c = len(signatures)
            signatures[sig] = c
        cls[s] = c
    # Representatives: per height, the class of the highest state keeps it; others their lowest.
    top_of_height: Dict[int, int] = {}
    for s in range(n):
        top_of_height[height[s]] = s  # ascending scan: ends with the highest id per height
    rep: Dict[int, int] = {}
    for s in range(n):
        c = cls[s]
        if c not in rep:
            rep[c] = s
    for s in top_of_height.values():
        rep[cls[s]] = s
    keep = sorted(set(rep.values()))
    new_id = {old: i for i, old in enumerate(keep)}
    min_final = [final[s] for s in keep]
    min_arcs = [[(label, new_id[rep[cls[t]]]) for label, t in arcs[s]] for s in keep]
    return Fst(min_final, min_arcs)


def fst_properties(fst: Fst) -> int:
    """The property bits OpenFST stores for this (acyclic, connected, unweighted) acceptor."""
    props = (P_EXPANDED | P_ACCEPTOR | P_ACYCLIC | P_INIT_ACYCLIC | P_ACCESSIBLE | P_COACCESSIBLE
             | P_UNWEIGHTED | P_UNWEIGHTED_CYCLES)
    ideterministic = isorted = topsorted = string = True
    epsilons = False
    nfinal = 0
    for s, out in enumerate(fst.arcs):
        if nfinal > 0:
            string = False
        seen = set()
        prev = None
        for label, nxt in out:
            if label in seen:
                ideterministic = False
            seen.add(label)
            if label == 0:
                epsilons = True
            if prev is not None and label < prev:
                isorted = False
            if nxt <= s:
                topsorted = False
            if nxt != s + 1:
                string = False
            prev = label
        if fst.final[s]:
            nfinal += 1
        elif len(out) != 1:
            string = False
    props |= (P_IDET | P_ODET) if ideterministic else (P_NON_IDET | P_NON_ODET)
    props |= (P_EPS | P_IEPS | P_OEPS) if epsilons else (P_NO_EPS | P_NO_IEPS | P_NO_OEPS)
    props |= (P_ISORTED | P_OSORTED) if isorted else (P_NOT_ISORTED | P_NOT_OSORTED)
    props |= P_TOPSORTED if topsorted else P_NOT_TOPSORTED
    props |= P_STRING if string else P_NOT_STRING
    return props


def _fst_string(value: bytes) -> bytes:
    return struct.pack("<i", len(value)) + value


def _pad(offset: int) -> bytes:
    return b"\0" * ((-offset) % FST_ALIGN)


def float32(value: float) -> float:
    """Round like the C++ ``float`` parameters of Scorer::reset_params."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def serialize_section(fst: Fst, alpha: float, beta: float, utf8: bool, base_offset: int) -> bytes:
    """The bytes appended to the LM: trie header + aligned ConstFst. ``base_offset`` is the LM
    size (alignment is to absolute file offsets)."""
    nstates = len(fst.final)
    narcs = sum(len(out) for out in fst.arcs)
    parts = [TRIE_MAGIC, struct.pack("<i?dd", TRIE_VERSION, utf8, float32(alpha), float32(beta))]
    parts += [struct.pack("<i", FST_MAGIC), _fst_string(FST_TYPE), _fst_string(ARC_TYPE),
              struct.pack("<iiQqqq", FST_ALIGNED_VERSION, FST_FLAG_ALIGNED, fst_properties(fst),
                          0, nstates, narcs)]
    size = base_offset + sum(len(p) for p in parts)
    parts.append(_pad(size))
    size += len(parts[-1])
    state_struct = struct.Struct("<fIIII")
    pos = 0
    states = bytearray()
    for s in range(nstates):
        n = len(fst.arcs[s])
        states += state_struct.pack(0.0 if fst.final[s] else INF, pos, n, 0, 0)
        pos += n
    parts.append(bytes(states))
    size += len(states)
    parts.append(_pad(size))
    arc_struct = struct.Struct("<iifi")
    arcs = bytearray()
    for out in fst.arcs:
        for label, nxt in out:
            arcs += arc_struct.pack(label, label, 0.0, nxt)
    parts.append(bytes(arcs))
    return b"".join(parts)


# --- reading a scorer back ---------------------------------------------------------------------

class ScorerInfo(NamedTuple):
    lm_size: int
    utf8: bool
    alpha: float
    beta: float
    properties: int
    fst: Fst

    @property
    def num_states(self) -> int:
        return len(self.fst.final)

    @property
    def num_arcs(self) -> int:
        return sum(len(out) for out in self.fst.arcs)


def parse_section(data: bytes, offset: int, path: str = "<scorer>") -> ScorerInfo:
    """Parse and fully check the trie/FST section starting at ``offset``; it must end the file."""
    def need(n: int, at: int, what: str) -> None:
        if at + n > len(data):
            raise ScorerError("%s is truncated: %s at offset %d needs %d bytes, file has %d "
                              "(cut short by an interrupted copy or download, or a full disk)"
                              % (path, what, at, n, len(data)))

    need(25, offset, "scorer header")
    if data[offset:offset + 4] != TRIE_MAGIC:
        raise ScorerError("%s: no scorer header at offset %d (magic %r)"
                          % (path, offset, data[offset:offset + 4]))
    version, utf8_byte, alpha, beta = struct.unpack_from("<iBdd", data, offset + 4)
    if version != TRIE_VERSION:
        raise ScorerError("%s: scorer version %d, DeepSpeech 0.7.4 needs %d"
                          % (path, version, TRIE_VERSION))
    if utf8_byte not in (0, 1):
        raise ScorerError("%s: bad UTF-8 flag %d" % (path, utf8_byte))
    at = offset + 25
    need(4, at, "FST magic")
    (magic,) = struct.unpack_from("<i", data, at)
    if magic != FST_MAGIC:
        raise ScorerError("%s: bad FST magic %d at offset %d" % (path, magic, at))
    at += 4
    for expected, what in ((FST_TYPE, "FST type"), (ARC_TYPE, "arc type")):
        need(4, at, what)
        (length,) = struct.unpack_from("<i", data, at)
        need(length, at + 4, what)
        got = data[at + 4:at + 4 + length]
        if got != expected:
            raise ScorerError("%s: %s is %r, expected %r" % (path, what, got, expected))
        at += 4 + length
    need(40, at, "FST header")
    fversion, flags, props, start, nstates, narcs = struct.unpack_from("<iiQqqq", data, at)
    at += 40
    if fversion != FST_ALIGNED_VERSION or flags != FST_FLAG_ALIGNED:
        raise ScorerError("%s: FST version %d flags %d; expected an aligned ConstFst (1, 4)"
                          % (path, fversion, flags))
    if nstates < 1 or start != 0 or narcs < 0:
        raise ScorerError("%s: FST has start %d, %d states, %d arcs" % (path, start, nstates, narcs))
    at += (-at) % FST_ALIGN
    need(nstates * STATE_BYTES, at, "FST states")
    states = list(struct.iter_unpack("<fIIII", data[at:at + nstates * STATE_BYTES]))
    at += nstates * STATE_BYTES
    at += (-at) % FST_ALIGN
    need(narcs * ARC_BYTES, at, "FST arcs")
    arc_rows = list(struct.iter_unpack("<iifi", data[at:at + narcs * ARC_BYTES]))
    at += narcs * ARC_BYTES
    if at != len(data):
        raise ScorerError("%s: %d unexpected bytes after the FST" % (path, len(data) - at))
    final: List[bool] = []
    arcs: List[List[Tuple[int, int]]] = []
    expected_pos = 0
    for s, (weight, pos, n, nieps, noeps) in enumerate(states):
        if weight == 0.0:
            final.append(True)
        elif weight == INF:
            final.append(False)
        else:
            raise ScorerError("%s: state %d has final weight %r" % (path, s, weight))
        if pos != expected_pos or pos + n > narcs:
            raise ScorerError("%s: state %d arcs [%d, +%d) are not contiguous" % (path, s, pos, n))
        expected_pos += n
        out = []
        for ilabel, olabel, weight_a, nxt in arc_rows[pos:pos + n]:
            if ilabel != olabel or weight_a != 0.0 or not 0 <= nxt < nstates or ilabel <= 0:
                raise ScorerError("%s: state %d has a malformed arc (%d, %d, %r, %d)"
                                  % (path, s, ilabel, olabel, weight_a, nxt))
            out.append((ilabel, nxt))
        if nieps or noeps:
            raise ScorerError("%s: state %d counts epsilon arcs" % (path, s))
        arcs.append(out)
    if expected_pos != narcs:
        raise ScorerError("%s: states reference %d arcs, header says %d" % (path, expected_pos, narcs))
    return ScorerInfo(offset, bool(utf8_byte), alpha, beta, props, Fst(final, arcs))


def _no_section(path: str, complete: str) -> ScorerError:
    return ScorerError(
        "%s has no %s0.7.4 scorer section after the KenLM data: it is truncated (cut short by an "
        "interrupted copy or download) or a bare KenLM binary (a lm.binary is not a scorer). Fix: "
        "%s (a bare LM: package it with its vocabulary, voice-scorer-package --lm LM --vocab "
        "VOCAB ...)" % (path, complete, SCORER_FIX))


def _empty_scorer(path: str) -> ScorerError:
    return ScorerError("scorer %s is empty (0 bytes): an interrupted copy, download or packaging "
                       "run left it behind. Fix: %s" % (path, SCORER_FIX))


def read_scorer(path: "os.PathLike[str] | str") -> ScorerInfo:
    """Read any 0.7.4 scorer: check its LM header and find and check its FST section.

    Every problem (missing file, directory, unreadable, empty, truncated, corrupt) is a
    ScorerError whose one-line message names the file and the fix.
    """
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _file_error("scorer", path, exc) from exc
    if not data:
        raise _empty_scorer(path)
    read_kenlm_header(data, path)
    needle = TRIE_MAGIC + struct.pack("<i", TRIE_VERSION)
    last_error: Optional[ScorerError] = None
    at = data.find(needle, 108)
    while at != -1:
        try:
            return parse_section(data, at, path)
        except ScorerError as exc:
            last_error = exc
        at = data.find(needle, at + 1)
    if last_error is not None:
        damage = "" if "truncated" in str(last_error) else " (the scorer is corrupt)"
        raise ScorerError("%s%s. Fix: %s" % (last_error, damage, SCORER_FIX)) from last_error
    raise _no_section(path, "")


class ScorerHeader(NamedTuple):
    lm_size: int
    utf8: bool
    alpha: float
    beta: float
    properties: int
    num_states: int
    num_arcs: int


def _header_at(data: "bytes | mmap.mmap", offset: int, size: int) -> Optional[ScorerHeader]:
    """Parse the section headers at ``offset``; None unless they describe a section that ends
    exactly at ``size``."""
    at = offset + 25
    if at + 4 > size or data[offset:offset + 4] != TRIE_MAGIC:
        return None
    version, utf8_byte, alpha, beta = struct.unpack("<iBdd", data[offset + 4:offset + 25])
    if version != TRIE_VERSION or utf8_byte > 1:
        return None
    (magic,) = struct.unpack("<i", data[at:at + 4])
    at += 4
    if magic != FST_MAGIC:
        return None
    for expected in (FST_TYPE, ARC_TYPE):
        if at + 4 > size:
            return None
        (length,) = struct.unpack("<i", data[at:at + 4])
        if data[at + 4:at + 4 + length] != expected:
            return None
        at += 4 + length
    if at + 40 > size:
        return None
    fversion, flags, props, start, nstates, narcs = struct.unpack("<iiQqqq", data[at:at + 40])
    at += 40
    if fversion != FST_ALIGNED_VERSION or flags != FST_FLAG_ALIGNED or start != 0 \
            or nstates < 1 or narcs < 0:
        return None
    at += (-at) % FST_ALIGN
    at += nstates * STATE_BYTES
    at += (-at) % FST_ALIGN
    at += narcs * ARC_BYTES
    if at != size:
        return None
    return ScorerHeader(offset, bool(utf8_byte), alpha, beta, props, nstates, narcs)


def read_scorer_header(path: "os.PathLike[str] | str") -> ScorerHeader:
    """The scorer's headers only (memory-mapped: cheap even for a 300 MB base scorer)."""
    path = str(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise _file_error("scorer", path, exc) from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise _empty_scorer(path)
        if size < 108:
            read_kenlm_header(handle.read(), path)  # names a cut-off header or a foreign file
            raise ScorerError("%s is too small to be a scorer (%d bytes). Fix: %s"
                              % (path, size, SCORER_FIX))
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            read_kenlm_header(data[:108 + 8 * 256], path)
            needle = TRIE_MAGIC + struct.pack("<i", TRIE_VERSION)
            at = data.find(needle, 108)
            while at != -1:
                header = _header_at(data, at, size)
                if header is not None:
                    return header
                at = data.find(needle, at + 1)
    raise _no_section(path, "complete ")


def words_of(info: ScorerInfo, alphabet: Optional[Alphabet] = None) -> List[str]:
    """List the words the FST accepts (for inspection and tests)."""
    labels = alphabet.labels if alphabet else None
    out: List[str] = []
    stack: List[Tuple[int, List[int]]] = [(0, [])]
    while stack:
        s, prefix = stack.pop()
        if info.fst.final[s]:
            if info.utf8:
                out.append(bytes(prefix).decode("utf-8", "replace"))
            elif labels is not None:
                if any(not 0 < x <= len(labels) for x in prefix):
                    raise ScorerError(
                        "the scorer uses label %d but alphabet %s has only %d labels: the scorer "
                        "was built from another alphabet; give the alphabet.txt it was packaged "
                        "with (the model's)" % (max(prefix), alphabet.path if alphabet else "",
                                                len(labels)))
                out.append("".join(labels[x - 1] for x in prefix[:-1]))
            else:
                out.append(" ".join(str(x) for x in prefix))
        for label, nxt in reversed(info.fst.arcs[s]):
            stack.append((nxt, prefix + [label]))
    return sorted(out)


# --- packaging ---------------------------------------------------------------------------------

class PackageResult(NamedTuple):
    path: str
    words: int
    skipped: List[UnknownWord]
    utf8: bool
    num_states: int
    num_arcs: int
    sha256: str


def describe_unknown(unknown: Sequence[UnknownWord], limit: int = 20) -> str:
    lines = ["%r (not in alphabet: %s)" % (u.word, " ".join(repr(c) for c in u.bad))
             for u in unknown[:limit]]
    if len(unknown) > limit:
        lines.append("... and %d more" % (len(unknown) - limit))
    return "\n  ".join(lines)


def package(alphabet_path: "Optional[os.PathLike[str] | str]", lm_path: "os.PathLike[str] | str",
            vocab_path: "os.PathLike[str] | str", package_path: "os.PathLike[str] | str",
            default_alpha: float, default_beta: float, force_utf8: Optional[bool] = None,
            skip_unknown: bool = False, log: Callable[[str], None] = lambda msg: None
            ) -> PackageResult:
    """Write a 0.7.4 scorer package; see the module docstring for what is checked.

    ``force_utf8`` None means upstream's rule: UTF-8 mode when every vocabulary word is a single
    character. Words with characters outside the alphabet raise ScorerError unless
    ``skip_unknown`` (then they are left out and returned in ``skipped``).
    """
    lm_path, vocab_path, package_path = str(lm_path), str(vocab_path), str(package_path)
    for name, value in (("default_alpha", default_alpha), ("default_beta", default_beta)):
        if not math.isfinite(value) or abs(value) > 3.4e38:
            raise ScorerError("%s must be a finite number that fits a float32, got %r"
                              % (name, value))
    words, char_based = read_vocabulary(vocab_path)
    utf8 = char_based if force_utf8 is None else force_utf8
    if force_utf8 is None and char_based:
        log("every vocabulary word is a single character: using UTF-8 mode (as upstream does); "
            "pass --force-utf8 false to override")
    alphabet: Optional[Alphabet] = None
    if not utf8:
        if alphabet_path is None:
            raise ScorerError("--alphabet is required unless UTF-8 mode is used")
        alphabet = read_alphabet(alphabet_path)
    try:
        lm = Path(lm_path).read_bytes()
    except OSError as exc:
        raise ScorerError("cannot read language model %s: %s" % (lm_path, exc.strerror or exc)) from exc
    read_kenlm_header(lm, lm_path)
    sequences, unknown = encode_words(words, alphabet, utf8)
    if unknown:
        detail = describe_unknown(unknown)
        if not skip_unknown:
            raise ScorerError(
                "%d word(s) of %s contain characters outside the alphabet %s:\n  %s\nFix the "
                "sentences (or spell the words with the model's letters), or pass --skip-unknown "
                "to leave these words out" % (len(unknown), vocab_path, alphabet_path, detail))
        log("warning: leaving out %d word(s) with characters outside the alphabet:\n  %s"
            % (len(unknown), detail))
    fst = build_dictionary(sequences)
    section = serialize_section(fst, default_alpha, default_beta, utf8, len(lm))
    expected_sha = hashlib.sha256(lm + section).hexdigest()
    target = Path(package_path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise ScorerError("target directory %s does not exist" % directory)
    fd, tmp_name = tempfile.mkstemp(dir=str(directory), prefix=".%s." % target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(lm)
            out.write(section)
            out.flush()
            os.fsync(out.fileno())
        written = Path(tmp_name).read_bytes()
        if hashlib.sha256(written).hexdigest() != expected_sha:
            raise ScorerError("%s: re-read content differs from what was written (disk full or "
                              "failing storage?)" % tmp_name)
        read_kenlm_header(written, tmp_name)
        info = parse_section(written, len(lm), tmp_name)
        if info.fst != fst or info.utf8 != utf8:
            raise ScorerError("%s: re-parsed FST differs from the one built" % tmp_name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, str(target))
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    fsync_dir(directory)
    return PackageResult(str(target), len(sequences), unknown, utf8, len(fst.final),
                         sum(len(a) for a in fst.arcs), expected_sha)


def fsync_dir(directory: Path) -> None:
    """fsync a directory (its entries: a rename into it survives power loss); best effort."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- command line ------------------------------------------------------------------------------

def _tristate(value: str) -> Optional[bool]:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "y"):
        return True
    if lowered in ("false", "0", "no", "n"):
        return False
    if lowered in ("", "auto"):
        return None
    raise argparse.ArgumentTypeError("expected true, false or auto, got %r" % value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voice-scorer-package",
        description="Package a KenLM binary and a vocabulary into a DeepSpeech 0.7.4 .scorer "
                    "(byte-identical to upstream generate_package.py, with stricter checks). "
                    "`voice-scorer-package inspect SCORER` checks and describes a scorer.")
    parser.add_argument("--alphabet", help="the model's alphabet.txt (not needed in UTF-8 mode)")
    parser.add_argument("--lm", required=True,
                        help="KenLM binary built with `build_binary -v trie -a 255 -q 8`")
    parser.add_argument("--vocab", required=True, help="vocabulary: words separated by whitespace")
    parser.add_argument("--package", required=True, help="output .scorer path (replaced atomically)")
    parser.add_argument("--default_alpha", "--default-alpha", dest="default_alpha", type=float,
                        required=True, help="language model weight stored in the package")
    parser.add_argument("--default_beta", "--default-beta", dest="default_beta", type=float,
                        required=True, help="word insertion bonus stored in the package")
    parser.add_argument("--force-utf8", "--force_utf8", dest="force_utf8", type=_tristate,
                        default=None, metavar="{true,false,auto}",
                        help="force UTF-8 (byte) mode on or off; default auto: on only when every "
                             "vocabulary word is a single character (upstream's rule)")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="leave out (with a warning) words with characters outside the "
                             "alphabet instead of failing")
    return parser


def inspect_main(argv: Sequence[str]) -> int:
    """``voice-scorer-package inspect SCORER [--alphabet A] [--spell TEXT] [--words]``."""
    parser = argparse.ArgumentParser(
        prog="voice-scorer-package inspect",
        description="Check a 0.7.4 scorer completely and describe it. With --spell, print TEXT "
                    "with every word the scorer's vocabulary lacks replaced by <oov> (exit 1 if "
                    "any).")
    parser.add_argument("scorer")
    parser.add_argument("--alphabet", help="the alphabet the scorer was built with")
    parser.add_argument("--spell", help="a sentence to look up word by word")
    parser.add_argument("--words", action="store_true", help="list the vocabulary")
    args = parser.parse_args(argv)
    try:
        info = read_scorer(args.scorer)
        alphabet = read_alphabet(args.alphabet) if args.alphabet else None
    except ScorerError as exc:
        print("voice-scorer-package: error: %s" % exc, file=sys.stderr)
        return 1
    except OSError as exc:  # not foreseen above; still one line, never a traceback
        print("voice-scorer-package: error: cannot read %s: %s"
              % (exc.filename or args.scorer, exc.strerror or exc), file=sys.stderr)
        return 1
    except MemoryError:
        print("voice-scorer-package: error: %s is too large to inspect in memory on this machine"
              % args.scorer, file=sys.stderr)
        return 1
    if not info.utf8 and alphabet is None and (args.spell or args.words):
        print("voice-scorer-package: error: --alphabet is needed to read words of a non-UTF-8 "
              "scorer", file=sys.stderr)
        return 2
    try:
        vocabulary = words_of(info, alphabet) if (args.spell or args.words) else []
    except ScorerError as exc:
        print("voice-scorer-package: error: %s" % exc, file=sys.stderr)
        return 1
    print("%s: LM %d bytes, %s mode, alpha %r, beta %r, FST %d states / %d arcs, properties %#x"
          % (args.scorer, info.lm_size, "UTF-8" if info.utf8 else "alphabet", info.alpha,
             info.beta, info.num_states, info.num_arcs, info.properties))
    if args.words:
        print("\n".join(vocabulary))
    if args.spell:
        known = set(vocabulary)
        out = [w if w in known else "<oov>" for w in args.spell.split()]
        print(" ".join(out))
        return 0 if "<oov>" not in out else 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inspect"]:
        return inspect_main(argv[1:])
    args = build_parser().parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        result = package(args.alphabet, args.lm, args.vocab, args.package, args.default_alpha,
                         args.default_beta, force_utf8=args.force_utf8,
                         skip_unknown=args.skip_unknown, log=log)
    except ScorerError as exc:
        print("voice-scorer-package: error: %s" % exc, file=sys.stderr)
        return 1
    print("wrote %s: %d words, %s mode, FST %d states / %d arcs, sha256 %s"
          % (result.path, result.words, "UTF-8" if result.utf8 else "alphabet",
             result.num_states, result.num_arcs, result.sha256))
    return 0


if __name__ == "__main__":
    sys.exit(main())
