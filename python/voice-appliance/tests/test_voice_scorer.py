"""The packager against upstream's own output, and its refusals."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from pathlib import Path

import pytest

from voice_testlib import DATA, reference_cases
from voice_appliance import scorer
from voice_appliance.scorer import ScorerError

CASES = reference_cases()


def _tristate(text: str):
    return {"": None, "true": True, "false": False}[text.lower()]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_byte_identical_to_upstream_generate_package(case, tmp_path):
    out = tmp_path / "out.scorer"
    result = scorer.package(
        DATA / case["alphabet"], DATA / case["lm"], DATA / case["vocab"], out,
        case["default_alpha"], case["default_beta"], force_utf8=_tristate(case["force_utf8"]),
        skip_unknown="unknown_words" in case)
    reference = (DATA / case["reference"]).read_bytes()
    produced = out.read_bytes()
    assert len(produced) == len(reference)
    assert hashlib.sha256(produced).hexdigest() == hashlib.sha256(reference).hexdigest()
    assert len(result.skipped) == case.get("unknown_words", 0)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reference_accepts_exactly_the_spellable_vocabulary(case):
    info = scorer.read_scorer(DATA / case["reference"])
    words, _ = scorer.read_vocabulary(DATA / case["vocab"])
    if info.utf8:
        expected = sorted(w for w in words if w not in scorer.SPECIAL_TOKENS)
        assert scorer.words_of(info) == expected
    else:
        alphabet = scorer.read_alphabet(DATA / case["alphabet"])
        chars = set(alphabet.labels)
        expected = sorted(w for w in words if set(w) <= chars)
        assert scorer.words_of(info, alphabet) == expected
    assert info.lm_size == (DATA / case["lm"]).stat().st_size
    header = scorer.read_scorer_header(DATA / case["reference"])
    assert header == (info.lm_size, info.utf8, info.alpha, info.beta, info.properties,
                      info.num_states, info.num_arcs)
    assert info.alpha == scorer.float32(case["default_alpha"])
    assert info.beta == scorer.float32(case["default_beta"])


def test_unknown_characters_are_an_error_naming_words_and_characters(tmp_path):
    case = DATA / "alphabet_edge"
    with pytest.raises(ScorerError) as err:
        scorer.package(case / "alphabet.txt", case / "lm.binary", case / "vocab.txt",
                       tmp_path / "x.scorer", 1.0, 2.0, force_utf8=False)
    message = str(err.value)
    assert "8 word(s)" in message
    assert "'schiff' (not in alphabet: 'f')" in message
    assert "'héllo' (not in alphabet: 'é' 'l' 'o')" in message
    assert "--skip-unknown" in message
    assert not (tmp_path / "x.scorer").exists()
    assert os.listdir(tmp_path) == []


def test_skip_unknown_warns(tmp_path):
    case = DATA / "alphabet_edge"
    messages = []
    result = scorer.package(case / "alphabet.txt", case / "lm.binary", case / "vocab.txt",
                            tmp_path / "x.scorer", 1.0, 2.0, force_utf8=False, skip_unknown=True,
                            log=messages.append)
    assert [u.word for u in result.skipped][:2] == ["schiff", "#hashtag"]
    assert any("leaving out 8 word(s)" in m and "'regnet'" in m for m in messages)


@pytest.mark.bad_input
def test_lm_with_vocabulary_strings_is_refused(tmp_path):
    case = DATA / "de_commands"
    with pytest.raises(ScorerError, match=r"build_binary -v trie"):
        scorer.package(case / "alphabet.txt", case / "lm_with_vocab.binary", case / "vocab.txt",
                       tmp_path / "x.scorer", 1.0, 2.0)
    assert os.listdir(tmp_path) == []


@pytest.mark.bad_input
def test_arpa_and_garbage_are_refused(tmp_path):
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=3\n", encoding="utf-8")
    with pytest.raises(ScorerError, match="ARPA text file.*build_binary -v trie"):
        scorer.read_kenlm_header(arpa.read_bytes(), str(arpa))
    with pytest.raises(ScorerError, match="not a KenLM binary"):
        scorer.read_kenlm_header(b"hello", "x")
    incomplete = scorer.KENLM_MAGIC_INCOMPLETE + b"\0" * 200
    with pytest.raises(ScorerError, match="incomplete KenLM binary"):
        scorer.read_kenlm_header(incomplete, "x")


@pytest.mark.bad_input
@pytest.mark.parametrize("content,pattern", [
    ("a\nb\nc\n", "no space label"),
    (" \r\na\r\n", "carriage return .* line 1"),
    (" \na\nb", "last line 'b' has no newline"),
    ("# only comments\n", "no labels"),
    ("", "empty"),
])
def test_bad_alphabets_are_refused(tmp_path, content, pattern):
    path = tmp_path / "alphabet.txt"
    path.write_bytes(content.encode("utf-8"))
    with pytest.raises(ScorerError, match=pattern):
        scorer.read_alphabet(path)


def test_alphabet_parsing_rules(tmp_path):
    path = tmp_path / "alphabet.txt"
    path.write_text("# comment\na\n\\#\n \nb\na\n", encoding="utf-8")
    alphabet = scorer.read_alphabet(path)
    assert alphabet.labels == ["a", "#", " ", "b", "a"]
    assert alphabet.space_label == 2
    assert alphabet.char_map() == {"a": 5, "#": 2, " ": 3, "b": 4}


@pytest.mark.fault
def test_failed_packaging_leaves_existing_target_untouched(tmp_path):
    case = DATA / "de_commands"
    target = tmp_path / "generated.scorer"
    shutil.copy(str(DATA / "de_5k" / "reference.scorer"), str(target))
    before = target.read_bytes()
    bad_vocab = tmp_path / "vocab.txt"
    bad_vocab.write_text("schalte das licht an\nstraße\n", encoding="utf-8")
    with pytest.raises(ScorerError, match="straße"):
        scorer.package(case / "alphabet.txt", case / "lm.binary", bad_vocab, target, 1.0, 2.0)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["generated.scorer", "vocab.txt"]


def test_replaces_existing_target_atomically(tmp_path):
    case = DATA / "de_commands"
    target = tmp_path / "generated.scorer"
    target.write_bytes(b"old")
    inode_before = target.stat().st_ino
    scorer.package(case / "alphabet.txt", case / "lm.binary", case / "vocab.txt", target,
                   0.931289039105002, 1.1834137581510284)
    assert target.read_bytes() == (case / "reference.scorer").read_bytes()
    assert target.stat().st_ino != inode_before  # renamed into place, not rewritten
    assert os.listdir(tmp_path) == ["generated.scorer"]


@pytest.mark.fault
def test_truncated_or_padded_scorers_are_detected(tmp_path):
    data = (DATA / "de_commands" / "reference.scorer").read_bytes()
    lm_size = (DATA / "de_commands" / "lm.binary").stat().st_size
    with pytest.raises(ScorerError, match="truncated"):
        scorer.parse_section(data[:-5], lm_size)
    with pytest.raises(ScorerError, match="unexpected bytes"):
        scorer.parse_section(data + b"\0", lm_size)
    bad_version = bytearray(data)
    struct.pack_into("<i", bad_version, lm_size + 4, 5)
    with pytest.raises(ScorerError, match="version 5"):
        scorer.parse_section(bytes(bad_version), lm_size)
    truncated = tmp_path / "t.scorer"
    truncated.write_bytes(data[:-5])
    with pytest.raises(ScorerError, match="truncated"):
        scorer.read_scorer(truncated)
    with pytest.raises(ScorerError, match="no complete 0.7.4 scorer section"):
        scorer.read_scorer_header(truncated)
    bare = DATA / "de_commands" / "lm.binary"
    with pytest.raises(ScorerError, match="no 0.7.4 scorer section"):
        scorer.read_scorer(bare)


@pytest.mark.bad_input
def test_empty_vocabulary_after_filtering_is_refused(tmp_path):
    case = DATA / "de_commands"
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<s> </s> <unk>\n", encoding="utf-8")
    with pytest.raises(ScorerError, match="no word of the vocabulary"):
        scorer.package(case / "alphabet.txt", case / "lm.binary", vocab, tmp_path / "x.scorer",
                       1.0, 1.0, force_utf8=False)


@pytest.mark.bad_input
def test_non_finite_weights_are_refused(tmp_path):
    case = DATA / "de_commands"
    with pytest.raises(ScorerError, match="default_alpha must be a finite"):
        scorer.package(case / "alphabet.txt", case / "lm.binary", case / "vocab.txt",
                       tmp_path / "x.scorer", float("nan"), 1.0)


def test_cli(tmp_path, capsys):
    case = DATA / "de_commands"
    out = tmp_path / "cli.scorer"
    code = scorer.main(["--alphabet", str(case / "alphabet.txt"), "--lm", str(case / "lm.binary"),
                        "--vocab", str(case / "vocab.txt"), "--package", str(out),
                        "--default_alpha", "0.5", "--default_beta", "1.25", "--force-utf8", "true"])
    assert code == 0
    assert out.read_bytes() == (case / "reference_utf8.scorer").read_bytes()
    assert "UTF-8 mode" in capsys.readouterr().out
    code = scorer.main(["--alphabet", str(case / "alphabet.txt"), "--lm",
                        str(case / "lm_with_vocab.binary"), "--vocab", str(case / "vocab.txt"),
                        "--package", str(out), "--default_alpha", "1", "--default_beta", "1"])
    assert code == 1
    assert "-v leaves the vocabulary out" in capsys.readouterr().err


def _bad_scorers(tmp_path):
    """name -> (path, fragments the one-line error must hold) for broken `inspect` inputs."""
    good = (DATA / "de_commands" / "reference.scorer").read_bytes()
    lm_size = (DATA / "de_commands" / "lm.binary").stat().st_size

    def write(name, data):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    flipped = bytearray(good)
    flipped[-4:] = struct.pack("<i", 10 ** 6)  # the last arc's next state
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / "kenlm.scorer").write_bytes(good)
    fix = "copy or download the scorer again"
    return {
        "missing": (tmp_path / "nope.scorer", ["does not exist", "check the path"]),
        "directory": (directory, ["is a directory", "give the path of the .scorer file", "kenlm.scorer"]),
        "empty": (write("empty.scorer", b""), ["is empty (0 bytes)", fix]),
        "cut-in-magic": (write("magic.scorer", good[:20]), ["is truncated", "copy it again"]),
        "cut-in-kenlm-header": (write("header.scorer", good[:80]), ["is truncated", "copy it again"]),
        "cut-in-lm": (write("lm.scorer", good[:lm_size // 2]), ["no 0.7.4 scorer section", "truncated", fix]),
        "cut-after-lm": (write("bare.scorer", good[:lm_size]), ["no 0.7.4 scorer section", "truncated", fix]),
        "cut-in-scorer-header": (write("trie.scorer", good[:lm_size + 12]), ["is truncated", fix]),
        "cut-in-states": (write("states.scorer", good[:lm_size + 200]), ["is truncated", "FST states", fix]),
        "cut-at-90%": (write("ninety.scorer", good[:len(good) * 9 // 10]), ["is truncated", "FST arcs", fix]),
        "cut-last-byte": (write("last.scorer", good[:-1]), ["is truncated", fix]),
        "corrupt-arc": (write("corrupt.scorer", bytes(flipped)), ["malformed arc", "corrupt", fix]),
    }


BAD_SCORERS = ["missing", "directory", "empty", "cut-in-magic", "cut-in-kenlm-header", "cut-in-lm",
               "cut-after-lm", "cut-in-scorer-header", "cut-in-states", "cut-at-90%", "cut-last-byte",
               "corrupt-arc"]


@pytest.mark.parametrize("case", BAD_SCORERS)
def test_inspect_reports_a_bad_scorer_in_one_line(tmp_path, capsys, case):
    path, fragments = _bad_scorers(tmp_path)[case]
    for extra in ([], ["--words", "--alphabet", str(DATA / "de_commands" / "alphabet.txt")]):
        code = scorer.main(["inspect", str(path)] + extra)
        captured = capsys.readouterr()
        assert code == 1
        assert captured.out == ""
        assert "Traceback" not in captured.err
        lines = captured.err.splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("voice-scorer-package: error: ")
        assert str(path) in lines[0]
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "cut-in-magic", "cut-in-lm", "cut-last-byte"])
def test_read_scorer_header_names_the_bad_file(tmp_path, case):
    path, _ = _bad_scorers(tmp_path)[case]
    for read in (scorer.read_scorer, scorer.read_scorer_header):
        with pytest.raises(ScorerError) as err:
            read(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_inspect_with_a_smaller_alphabet_is_one_line(tmp_path, capsys):
    small = tmp_path / "alphabet.txt"
    small.write_text(" \na\n", encoding="utf-8")
    code = scorer.main(["inspect", str(DATA / "de_commands" / "reference.scorer"), "--alphabet", str(small),
                        "--words"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1
    assert str(small) in err and "built from another alphabet" in err


def test_inspect_good_scorer_still_works(capsys):
    path = DATA / "de_commands" / "reference.scorer"
    assert scorer.main(["inspect", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("%s: LM " % path)


@pytest.mark.parametrize("lm_size", range(5000, 5016))
def test_serialize_and_parse_agree_at_every_alignment(lm_size):
    words, _ = scorer.read_vocabulary(DATA / "de_commands" / "vocab.txt")
    alphabet = scorer.read_alphabet(DATA / "de_commands" / "alphabet.txt")
    sequences, _ = scorer.encode_words(words, alphabet, utf8=False)
    fst = scorer.build_dictionary(sequences)
    section = scorer.serialize_section(fst, 0.5, 1.5, False, lm_size)
    info = scorer.parse_section(b"\0" * lm_size + section, lm_size)
    assert info.fst == fst
    header_end = lm_size + 25 + 4 + 9 + 12 + 40  # trie header, magic, 2 strings, FST header
    states_at = header_end + (-header_end) % 16
    assert states_at % 16 == 0 and section[header_end - lm_size:states_at - lm_size].strip(b"\0") == b""
    first_state = struct.unpack_from("<fIIII", section, states_at - lm_size)
    assert first_state[1:3] == (0, len(fst.arcs[0]))


def test_committed_inputs_match_their_generator(tmp_path):
    import make_corpora  # tests/data/make_corpora.py (deterministic)

    for name, directory in make_corpora.build(tmp_path).items():
        for filename in ("alphabet.txt", "vocab.txt"):
            assert (directory / filename).read_bytes() == (DATA / name / filename).read_bytes(), \
                (name, filename)


def test_alphabet_serialization_as_models_embed_it(tmp_path):
    path = tmp_path / "alphabet.txt"
    path.write_text(" \na\nä\n", encoding="utf-8")
    alphabet = scorer.read_alphabet(path)
    assert scorer.serialize_alphabet(alphabet) == (
        b"\x03\x00" + b"\x00\x00\x01\x00 " + b"\x01\x00\x01\x00a" + b"\x02\x00\x02\x00\xc3\xa4")
    model = tmp_path / "model.tflite"
    model.write_bytes(b"x" * 50 + scorer.serialize_alphabet(alphabet) + b"y")
    assert scorer.model_has_alphabet(model, alphabet)
    model.write_bytes(b"x" * 50)
    assert not scorer.model_has_alphabet(model, alphabet)
