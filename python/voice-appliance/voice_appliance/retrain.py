"""``voice-retrain``: rebuild the command scorer from Rhasspy sentences, safely.

Stages (each failure exits non-zero with a message naming the file/line/word at fault, and
leaves the installed scorer untouched):

1. ``sentences``  expand sentences.ini (+ slots; parsed by rhasspy-nlu) → corpus, streamed
                  (each sentence is written as it is expanded; no list of them is held)
2. ``alphabet``   every corpus word must be spellable with the model's alphabet
3. ``kenlm``      lmplz (fixed memory budget, --discount_fallback) → filter → build_binary -v trie
4. ``package``    0.7.4 scorer built with the model's alphabet, written beside the target
5. ``verify``     the new scorer must load in libdeepspeech and decode the verification WAV
                  to the expected transcript (``deepspeech --model M --scorer S --audio W``)
6. ``install``    atomic swap (the old generated scorer is kept as ``<name>.previous``), then
                  the optional reload command; a failed reload puts the old scorer back.

The generated scorer lives beside the German base scorer and never replaces it: the output
path must differ from ``base_scorer``. Exit codes: 0 ok (also "unchanged"), 2 configuration,
3 sentences, 4 alphabet, 5 KenLM, 6 packaging, 7 verification, 8 install/reload.

Coalescing is by content: every run records, beside the scorer, the digest of its inputs (the
sentences and slot files' bytes, the model, alphabet, tools and options it was built with). A run
whose inputs already built the installed scorer ends at once ("up to date"); after a build, a run
whose inputs changed on disk meanwhile builds again from what is there now. Runs wait for each
other on a lock (``lock_timeout``). ``--status`` says whether the installed scorer was built from
what is on disk now (exit 0), a run is due (exit 10) or the current inputs failed (exit 11).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from . import scorer as scorer_mod
from .scorer import ScorerError

GERMAN_ALPHA = 0.931289039105002
GERMAN_BETA = 1.1834137581510284

EXIT_CONFIG, EXIT_SENTENCES, EXIT_ALPHABET, EXIT_KENLM = 2, 3, 4, 5
EXIT_PACKAGE, EXIT_VERIFY, EXIT_INSTALL = 6, 7, 8
STATUS_UP_TO_DATE, STATUS_DUE, STATUS_FAILED = 0, 10, 11

# Every option, its default and its meaning. The JSON config file uses these keys; each has a
# command-line flag of the same name with dashes (see build_parser()).
OPTIONS: Dict[str, Any] = {
    "sentences": [],  # sentences.ini files (Rhasspy template syntax); required
    # Rhasspy's own sentences, as its training requests (Hermes) last sent them: read together with
    # `sentences` when the file exists, so both sources make one vocabulary (never one replacing the
    # other). Default: rhasspy-sentences.ini beside output_scorer.
    "rhasspy_sentences": None,
    "slots_dirs": [],  # directories holding slot value files ($name -> DIR/name)
    "slot_programs_dirs": [],  # directories of slot programs; rhasspy/number is built in
    "language": "de",  # language for numbers → words (num2words)
    "model": None,  # acoustic model (.tflite/.pb) used by the verification decode
    "alphabet": None,  # the model's alphabet.txt; required
    "base_scorer": None,  # the German base scorer: never written; default alpha/beta source
    "output_scorer": None,  # the generated scorer to (re)place; required
    "kenlm_bin_dir": None,  # directory of lmplz/filter/build_binary (default: PATH)
    "lmplz": None,  # explicit path of each KenLM tool (overrides kenlm_bin_dir)
    "filter": None,
    "build_binary": None,
    "order": 3,  # n-gram order
    "memory": "64M",  # lmplz/build_binary sort memory (-S): a fixed budget, Pi-sized
    "default_alpha": None,  # LM weight stored in the scorer (default: base scorer's, else German)
    "default_beta": None,  # word insertion bonus (same default rule)
    "lowercase": True,  # lowercase the sentences (the model's alphabet is lowercase)
    "transliterate": {"ß": "ss"},  # replacements applied to the corpus (the German model has no ß)
    "max_sentences": 200000,  # refuse templates that expand to more sentences
    "check_model_alphabet": True,  # the model file must embed exactly this alphabet
    "verify": True,  # run the verification decode (turning it off is explicit)
    "verify_audio": None,  # 16 kHz mono WAV for the verification decode
    "verify_transcript": None,  # what that WAV must decode to
    "verify_command": ["deepspeech", "--model", "{model}", "--scorer", "{scorer}",
                       "--audio", "{audio}"],  # prints the transcript as its last stdout line
    "add_verify_transcript": True,  # add the verification sentence to the corpus
    "reload_command": None,  # e.g. ["systemctl", "try-reload-or-restart", "voice-asr.service"]
    "work_dir": None,  # parent of the temporary work directory (default: system temp)
    "keep_work_dir": False,  # keep corpus/ARPA/binary for inspection
    "timeout": 900,  # seconds allowed for each external command
    "lock_timeout": 1800,  # seconds to wait for another run (or a Hermes training) to finish
    "max_passes": 10,  # builds per run while the inputs keep changing under it
}

_TYPES: Dict[str, Any] = {
    "sentences": list, "rhasspy_sentences": str, "slots_dirs": list, "slot_programs_dirs": list, "language": str,
    "model": str, "alphabet": str, "base_scorer": str, "output_scorer": str,
    "kenlm_bin_dir": str, "lmplz": str, "filter": str, "build_binary": str, "order": int,
    "memory": str, "default_alpha": float, "default_beta": float, "lowercase": bool,
    "transliterate": dict, "max_sentences": int, "check_model_alphabet": bool, "verify": bool,
    "verify_audio": str,
    "verify_transcript": str, "verify_command": list, "add_verify_transcript": bool,
    "reload_command": list, "work_dir": str, "keep_work_dir": bool, "timeout": float,
    "lock_timeout": float, "max_passes": int,
}


class RetrainError(Exception):
    def __init__(self, stage: str, message: str, code: int) -> None:
        super().__init__("[%s] %s" % (stage, message))
        self.stage = stage
        self.detail = message
        self.code = code


def load_config(path: Optional[str], overrides: Optional[Dict[str, Any]] = None,
                for_rollback: bool = False) -> Dict[str, Any]:
    """Defaults ← JSON file ← overrides; unknown keys and wrong types are errors."""
    config = json.loads(json.dumps(OPTIONS))  # deep copy
    sources: List[Dict[str, Any]] = []
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise RetrainError("config", "cannot read %s: %s" % (path, exc.strerror or exc),
                               EXIT_CONFIG) from exc
        except ValueError as exc:
            raise RetrainError("config", "%s is not valid JSON: %s" % (path, exc), EXIT_CONFIG) from exc
        if not isinstance(data, dict):
            raise RetrainError("config", "%s must hold a JSON object" % path, EXIT_CONFIG)
        sources.append(data)
    sources.append(overrides or {})
    for source in sources:
        for key, value in source.items():
            if key.startswith("_"):
                continue  # comments
            if key not in OPTIONS:
                raise RetrainError("config", "unknown option %r (known: %s)"
                                   % (key, ", ".join(sorted(OPTIONS))), EXIT_CONFIG)
            if value is not None:
                expected = _TYPES[key]
                if expected is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                if expected is list and isinstance(value, str) and key in (
                        "sentences", "slots_dirs", "slot_programs_dirs"):
                    value = [value]
                if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                    raise RetrainError("config", "option %r must be %s, got %r"
                                       % (key, expected.__name__, value), EXIT_CONFIG)
            config[key] = value
    for key in (("output_scorer",) if for_rollback else ("sentences", "alphabet", "output_scorer")):
        if not config[key]:
            raise RetrainError("config", "option %r is required" % key, EXIT_CONFIG)
    if not config["rhasspy_sentences"] and config["output_scorer"]:
        config["rhasspy_sentences"] = str(Path(os.path.expanduser(config["output_scorer"])).with_name(
            RHASSPY_SENTENCES))
    if config["max_passes"] < 1:
        raise RetrainError("config", "max_passes must be at least 1, got %d" % config["max_passes"],
                           EXIT_CONFIG)
    if config["lock_timeout"] < 0:
        raise RetrainError("config", "lock_timeout must be 0 or more seconds, got %s"
                           % config["lock_timeout"], EXIT_CONFIG)
    if config["order"] < 1 or config["order"] > 6:
        raise RetrainError("config", "order must be 1..6 (KenLM's default build), got %d"
                           % config["order"], EXIT_CONFIG)
    if config["verify"] and not for_rollback:
        for key in ("model", "verify_audio", "verify_transcript"):
            if not config[key]:
                raise RetrainError("config", "option %r is required for the verification decode "
                                   "(or set verify to false explicitly)" % key, EXIT_CONFIG)
    return config


# --- helpers -----------------------------------------------------------------------------------

RHASSPY_SENTENCES = "rhasspy-sentences.ini"


def sentence_files(config: Dict[str, Any]) -> List[str]:
    """The sentences a build reads: `sentences`, then Rhasspy's (if training ever stored them)."""
    files = list(config["sentences"])
    extra = config.get("rhasspy_sentences")
    if extra and Path(extra).is_file() and extra not in files:
        files.append(extra)
    return files


def store_rhasspy_sentences(config: Dict[str, Any], text: str) -> Path:
    """Keep the sentences of a Rhasspy training request where every later build reads them."""
    target = Path(config["rhasspy_sentences"])
    write_durably(target, text)
    return target

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tool(config: Dict[str, Any], name: str) -> str:
    if config.get(name):
        return str(config[name])
    if config.get("kenlm_bin_dir"):
        return str(Path(config["kenlm_bin_dir"]) / name)
    found = shutil.which(name)
    if not found:
        raise RetrainError("kenlm", "KenLM's %s is not on PATH; set kenlm_bin_dir" % name, EXIT_KENLM)
    return found


def _run(stage: str, code: int, cmd: Sequence[str], timeout: float, stdin: Optional[Path] = None,
         stdout: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    out_handle = None
    in_handle = None
    try:
        in_handle = stdin.open("rb") if stdin else None
        out_handle = stdout.open("wb") if stdout else None
        result = subprocess.run(list(cmd), stdin=in_handle if in_handle else subprocess.DEVNULL,
                                stdout=out_handle if out_handle else subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=timeout)
    except FileNotFoundError as exc:
        raise RetrainError(stage, "cannot run %s: not found" % cmd[0], code) from exc
    except PermissionError as exc:
        raise RetrainError(stage, "cannot run %s: permission denied" % cmd[0], code) from exc
    except subprocess.TimeoutExpired as exc:
        raise RetrainError(stage, "%s timed out after %s s"
                           % (" ".join(shlex.quote(c) for c in cmd), timeout), code) from exc
    finally:
        for handle in (in_handle, out_handle):
            if handle:
                handle.close()
    stdout_text = (result.stdout or b"").decode("utf-8", "replace") if not stdout else ""
    stderr_text = (result.stderr or b"").decode("utf-8", "replace")
    if result.returncode != 0:
        tail = "\n".join(stderr_text.strip().splitlines()[-8:]) or stdout_text.strip()[-800:]
        raise RetrainError(stage, "%s failed with exit code %d%s"
                           % (" ".join(shlex.quote(c) for c in cmd), result.returncode,
                              (":\n" + tail) if tail else ""), code)
    return subprocess.CompletedProcess(list(cmd), 0, stdout_text, stderr_text)


def command_verifier(config: Dict[str, Any]) -> Callable[[Path], str]:
    """Default verification: run verify_command and return its last non-empty stdout line."""
    def verify(scorer_path: Path) -> str:
        values = {"model": config["model"], "scorer": str(scorer_path),
                  "audio": config["verify_audio"]}
        cmd = [part.format(**values) for part in config["verify_command"]]
        result = _run("verify", EXIT_VERIFY, cmd, config["timeout"])
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    return verify


class _Lock:
    """Exclusive lock beside the output, so two retrains never interleave; waits up to ``timeout``."""

    def __init__(self, path: Path, timeout: float = 0.0,
                 log: Callable[[str], None] = lambda msg: None) -> None:
        self.path = path
        self.timeout = timeout
        self.log = log
        self.handle: Any = None

    def __enter__(self) -> "_Lock":
        import fcntl

        self.handle = self.path.open("a")
        deadline = time.monotonic() + self.timeout
        waited = False
        while True:
            try:
                fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if time.monotonic() >= deadline:
                    self.handle.close()
                    raise RetrainError(
                        "install", "another voice-retrain (or a Hermes training) still holds %s "
                        "after %.0f s; raise lock_timeout or look for a hung run (journalctl -u "
                        "voice-retrain)" % (self.path, self.timeout), EXIT_INSTALL) from exc
                if not waited:
                    self.log("waiting for another run to finish (%s)" % self.path)
                    waited = True
                time.sleep(0.2)

    def __exit__(self, *exc: Any) -> None:
        self.handle.close()


def _paths(config: Dict[str, Any]) -> Dict[str, Path]:
    target = Path(config["output_scorer"])
    return {"target": target, "previous": target.with_name(target.name + ".previous"),
            "staged": target.with_name("." + target.name + ".staged"),
            "lock": target.with_name("." + target.name + ".lock"),
            "state": target.with_name("." + target.name + ".inputs.json")}


# Options that do not change what a run builds (they are left out of the input digest).
_NOT_INPUTS = ("timeout", "lock_timeout", "max_passes", "reload_command", "work_dir",
               "keep_work_dir")


def _file_bytes_digest(digest: "hashlib._Hash", label: str, path: Path) -> None:
    digest.update(label.encode("utf-8") + b"\0")
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        digest.update(("<unreadable: %s>" % (exc.strerror or exc)).encode("utf-8"))
    digest.update(b"\0")


def inputs_digest(config: Dict[str, Any]) -> str:
    """sha256 over everything a run builds from: the sentences and slot files (their bytes), the
    alphabet and verification recording, where the model and tools resolve to, and the options."""
    digest = hashlib.sha256()
    options = {k: v for k, v in config.items() if k not in _NOT_INPUTS}
    digest.update(json.dumps(options, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for key in ("model", "base_scorer", "kenlm_bin_dir", "lmplz", "filter", "build_binary"):
        if config.get(key):
            digest.update(("%s=%s\0" % (key, os.path.realpath(str(config[key])))).encode("utf-8"))
    for path in sentence_files(config):
        _file_bytes_digest(digest, "sentences:" + path, Path(path))
    for key in ("alphabet", "verify_audio"):
        if config.get(key):
            _file_bytes_digest(digest, key, Path(config[key]))
    for key in ("slots_dirs", "slot_programs_dirs"):
        for root in config[key]:
            base = Path(root)
            files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
            for path in files:
                label = "%s:%s" % (key, path.relative_to(base).as_posix())
                if key == "slot_programs_dirs":  # programs: which ones and their mode, not output
                    digest.update(("%s %o\0" % (label, path.stat().st_mode)).encode("utf-8"))
                _file_bytes_digest(digest, label, path)
    return digest.hexdigest()


def _read_state(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(path: Path, state: Dict[str, Any]) -> None:
    """Replace the state record atomically and durably (it decides whether a run is due)."""
    write_durably(path, json.dumps(state, indent=2, sort_keys=True) + "\n")


def write_durably(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` atomically (readers see the old or the new file, never a torn
    one) and durably (file and directory fsynced); a link planted at the temporary name is not followed."""
    tmp = target.with_name(".%s.%d.tmp" % (target.name, os.getpid()))
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(str(tmp), str(target))
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    scorer_mod.fsync_dir(target.parent)


def touch_stamp(path: Path) -> None:
    """Create or touch ``path`` (never through a symlink): the signal a path unit watches."""
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise RetrainError("config", "cannot touch %s: %s" % (path, exc.strerror or exc),
                           EXIT_CONFIG) from exc
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def _built_from(record: Dict[str, Any], digest: str, target: Path) -> bool:
    """Whether the installed scorer is the one the recorded run built from inputs ``digest``."""
    return (record.get("built_from") == digest and target.is_file()
            and record.get("sha256") == _sha256(target))


def status(config: Dict[str, Any]) -> Dict[str, Any]:
    """Whether the installed scorer was built from the inputs on disk now.

    ``state``: ``up to date`` (installed from these inputs), ``due`` (these inputs were never
    tried: a run should start) or ``failed`` (these inputs were tried and refused; the installed
    scorer is from earlier inputs). ``code`` is the matching exit status (0, 10, 11)."""
    paths = _paths(config)
    record = _read_state(paths["state"])
    current = inputs_digest(config)
    target = paths["target"]
    if _built_from(record, current, target):
        state, code = "up to date", STATUS_UP_TO_DATE
    elif record.get("attempted") == current and record.get("result") not in (
            "installed", "unchanged"):
        # refused, interrupted or rolled back: the same inputs are not tried again by themselves
        state, code = str(record.get("result") or "failed"), STATUS_FAILED
    else:
        state, code = "due", STATUS_DUE
    return {"state": state, "code": code, "inputs": current, "built_from": record.get("built_from"),
            "attempted": record.get("attempted"), "result": record.get("result"),
            "output_scorer": str(target), "sha256": record.get("sha256")}


def _check_not_base(config: Dict[str, Any], target: Path) -> None:
    base = config.get("base_scorer")
    if not base:
        return
    base_path = Path(base)
    same = os.path.realpath(str(base_path)) == os.path.realpath(str(target))
    if not same and base_path.exists() and target.exists():
        same = os.path.samefile(str(base_path), str(target))
    if same:
        raise RetrainError("config", "output_scorer %s is the base scorer %s: the generated "
                           "scorer must live beside it (e.g. %s)" % (
                               target, base, base_path.with_name("generated.scorer")), EXIT_CONFIG)


def _check_inputs(config: Dict[str, Any]) -> None:
    """Name the option whose file or directory is missing before any work starts."""
    files = [("sentences", p) for p in config["sentences"]] + [("alphabet", config["alphabet"])]
    if config["verify"]:
        files += [("model", config["model"]), ("verify_audio", config["verify_audio"])]
    for key, path in files:
        if not Path(path).is_file():
            raise RetrainError("config", "%s: %s does not exist (or is not a file)" % (key, path),
                               EXIT_CONFIG)
    for key in ("slots_dirs", "slot_programs_dirs"):
        for path in config[key]:
            if not Path(path).is_dir():
                raise RetrainError("config", "%s: %s is not a directory" % (key, path), EXIT_CONFIG)


def _atomic_copy_link(source: Path, destination: Path) -> None:
    """Make ``destination`` a hard link to (or copy of) ``source``, replacing it atomically."""
    tmp = destination.with_name("." + destination.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(str(source), str(tmp))
    except OSError:
        shutil.copy2(str(source), str(tmp))
    os.replace(str(tmp), str(destination))


# --- the pipeline ------------------------------------------------------------------------------

def run(config: Dict[str, Any], verifier: Optional[Callable[[Path], str]] = None,
        log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
        dry_run: bool = False, corpus_out: Optional[TextIO] = None) -> Dict[str, Any]:
    """Build until the installed scorer is built from what is on disk; return a summary.

    ``dry_run``: only expand and check the sentences; the corpus is written to ``corpus_out``
    if given, else returned as ``summary["corpus"]`` (a list of lines).

    Raises RetrainError (after recording the attempt, so the same inputs are not retried)."""
    started = time.time()
    paths = _paths(config)
    target = paths["target"]
    _check_not_base(config, target)
    _check_inputs(config)
    if not target.parent.is_dir():
        raise RetrainError("config", "output directory %s does not exist" % target.parent, EXIT_CONFIG)
    alphabet = _checked_alphabet(config)
    alpha, beta = _alpha_beta(config, log)
    summary: Dict[str, Any] = {"output_scorer": str(target), "changed": False, "passes": 0}
    if dry_run:
        _dry_run_corpus(config, alphabet, log, summary, corpus_out)
        return summary

    with _Lock(paths["lock"], config["lock_timeout"], log):
        while True:
            digest = inputs_digest(config)
            record = _read_state(paths["state"])
            if _built_from(record, digest, target):
                log("up to date: %s was built from these inputs" % target)
                summary.setdefault("sha256", record["sha256"])
                break
            summary["passes"] += 1
            _write_state(paths["state"], dict(record, attempted=digest, result="running",
                                              time=time.time()))
            try:
                _one_pass(config, paths, alphabet, alpha, beta, verifier or command_verifier(config),
                          log, summary)
            except RetrainError as exc:
                _write_state(paths["state"], dict(record, attempted=digest,
                                                  result="failed: " + exc.stage, time=time.time()))
                raise
            _write_state(paths["state"], {
                "attempted": digest, "built_from": digest, "sha256": summary["sha256"],
                "result": "installed" if summary["changed"] else "unchanged", "time": time.time()})
            if inputs_digest(config) == digest:
                break
            if summary["passes"] >= config["max_passes"]:
                log("the inputs are still changing after %d builds; stopping here (the next save "
                    "starts another run)" % summary["passes"])
                break
            log("the inputs changed during this build: building again from what is on disk now")
    summary["seconds"] = round(time.time() - started, 2)
    return summary


def _checked_alphabet(config: Dict[str, Any]) -> Any:
    try:
        alphabet = scorer_mod.read_alphabet(config["alphabet"])
    except ScorerError as exc:
        raise RetrainError("alphabet", str(exc), EXIT_ALPHABET) from exc
    if config["check_model_alphabet"] and config.get("model"):
        if not Path(config["model"]).is_file():
            raise RetrainError("config", "model: %s does not exist" % config["model"], EXIT_CONFIG)
        if not scorer_mod.model_has_alphabet(config["model"], alphabet):
            raise RetrainError(
                "alphabet", "%s (%d labels) is not the alphabet embedded in the model %s: the "
                "runtime decodes with the model's alphabet, so a scorer built from another one "
                "spells words wrongly. Use the alphabet.txt shipped with the model"
                % (config["alphabet"], len(alphabet.labels), config["model"]), EXIT_ALPHABET)
    return alphabet


def _alpha_beta(config: Dict[str, Any], log: Callable[[str], None]) -> "tuple[float, float]":
    alpha, beta = config["default_alpha"], config["default_beta"]
    if alpha is None or beta is None:
        base_alpha, base_beta = GERMAN_ALPHA, GERMAN_BETA
        if config.get("base_scorer") and Path(config["base_scorer"]).is_file():
            try:
                info = scorer_mod.read_scorer_header(config["base_scorer"])
                base_alpha, base_beta = info.alpha, info.beta
            except ScorerError as exc:
                log("warning: cannot read alpha/beta from the base scorer (%s); using the German "
                    "model's defaults" % exc)
        alpha = base_alpha if alpha is None else alpha
        beta = base_beta if beta is None else beta
    return alpha, beta


def _corpus(config: Dict[str, Any], alphabet: Any, log: Callable[[str], None],
            summary: Dict[str, Any], corpus_path: Path) -> "tuple[List[str], int]":
    """Stages 1 and 2: the expanded, normalized corpus and its words, all spellable.

    The sentences are streamed: each is normalized and written to ``corpus_path`` as it is
    expanded, and only the set of words and the counts are kept (never the list of sentences).
    Returns the words (in order of first use) and the number of corpus lines written."""
    from . import sentences as sentences_mod

    lowercase, transliterate = config["lowercase"], config["transliterate"]
    words: Dict[str, None] = {}
    intents: Dict[str, None] = {}
    expanded = lines = 0
    with corpus_path.open("w", encoding="utf-8") as corpus:
        def add(line: str) -> None:
            nonlocal lines
            corpus.write(line + "\n")
            lines += 1
            for word in line.split():
                words[word] = None

        try:
            templates, stream = sentences_mod.stream_files(
                sentence_files(config), config["slots_dirs"], config["slot_programs_dirs"],
                config["language"], config["max_sentences"])
            for item in stream:
                expanded += 1
                intents[item.intent] = None
                line = sentences_mod.normalize(item.text, lowercase, transliterate)
                if line:
                    add(line)
        except sentences_mod.SentencesError as exc:
            raise RetrainError("sentences", str(exc), EXIT_SENTENCES) from exc
        if config["verify"] and config["add_verify_transcript"]:
            add(sentences_mod.normalize(config["verify_transcript"], lowercase, transliterate))
        if not lines:
            corpus.write("\n")
    summary.update(sentences=expanded, words=len(words), intents=sorted(intents))
    log("sentences: %d from %d intent(s), %d distinct words"
        % (expanded, len(summary["intents"]), len(words)))

    _, unknown = scorer_mod.encode_words(list(words), alphabet, utf8=False)
    if unknown:
        problems = []
        for item in unknown[:20]:
            where = sentences_mod.locate_word(item.word, templates)
            problems.append("%r: %s not in the alphabet — %s" % (
                item.word, " ".join(repr(c) for c in item.bad),
                ("from " + ", ".join(where)) if where
                else "generated (a number written as words, a slot program or a transliteration)"))
        more = "" if len(unknown) <= 20 else "\n  ... and %d more" % (len(unknown) - 20)
        raise RetrainError("alphabet", "%d word(s) cannot be spelled with the model's alphabet %s:"
                           "\n  %s%s\nRewrite them with the alphabet's letters or add a "
                           "transliteration (e.g. \"ß\": \"ss\")" % (
                               len(unknown), config["alphabet"], "\n  ".join(problems), more),
                           EXIT_ALPHABET)
    return list(words), lines


def _dry_run_corpus(config: Dict[str, Any], alphabet: Any, log: Callable[[str], None],
                    summary: Dict[str, Any], corpus_out: Optional[TextIO]) -> None:
    """Stages 1 and 2 only. The corpus goes to ``corpus_out`` once every check passed (copied
    from the streamed file, so it is never held whole), else into ``summary["corpus"]``."""
    work = Path(tempfile.mkdtemp(prefix="voice-retrain-", dir=config["work_dir"]))
    try:
        corpus_path = work / "corpus.txt"
        _, lines = _corpus(config, alphabet, log, summary, corpus_path)
        if corpus_out is not None:
            with corpus_path.open(encoding="utf-8") as corpus:
                shutil.copyfileobj(corpus, corpus_out)
        else:
            summary["corpus"] = (corpus_path.read_text(encoding="utf-8").split("\n")[:lines]
                                 if lines else [])
    finally:
        shutil.rmtree(str(work), ignore_errors=True)


def _one_pass(config: Dict[str, Any], paths: Dict[str, Path], alphabet: Any, alpha: float,
              beta: float, verifier: Callable[[Path], str], log: Callable[[str], None],
              summary: Dict[str, Any]) -> None:
    """One build from the inputs as they are on disk now (stages 1-6)."""
    work = Path(tempfile.mkdtemp(prefix="voice-retrain-", dir=config["work_dir"]))
    try:
        words, _ = _corpus(config, alphabet, log, summary, work / "corpus.txt")
    except BaseException:
        shutil.rmtree(str(work), ignore_errors=True)  # nothing built yet: nothing to keep
        raise
    try:
        _build_and_install(config, paths, work, words, alphabet, alpha, beta, verifier,
                           log, summary)
    finally:
        if config["keep_work_dir"]:
            log("work directory kept: %s" % work)
            summary["work_dir"] = str(work)
        else:
            shutil.rmtree(str(work), ignore_errors=True)
        if paths["staged"].exists():
            paths["staged"].unlink()


def _build_and_install(config: Dict[str, Any], paths: Dict[str, Path], work: Path,
                       words: List[str], alphabet: Any, alpha: float,
                       beta: float, verifier: Callable[[Path], str], log: Callable[[str], None],
                       summary: Dict[str, Any]) -> None:
    """Stages 3-6 from ``work/corpus.txt`` (written by ``_corpus``) and its ``words``."""
    target, staged, previous = paths["target"], paths["staged"], paths["previous"]
    corpus_path, vocab_path = work / "corpus.txt", work / "vocab.txt"
    vocab_path.write_text("\n".join(words) + "\n", encoding="utf-8")
    arpa, filtered, binary = work / "lm.arpa", work / "lm.filtered.arpa", work / "lm.binary"
    timeout = config["timeout"]

    # 3. KenLM
    t0 = time.time()
    _run("kenlm", EXIT_KENLM, [_tool(config, "lmplz"), "-o", str(config["order"]),
                               "-S", config["memory"], "-T", str(work), "--discount_fallback",
                               "--text", str(corpus_path), "--arpa", str(arpa)], timeout)
    _run("kenlm", EXIT_KENLM, [_tool(config, "filter"), "single", "vocab:%s" % vocab_path,
                               str(filtered)], timeout, stdin=arpa)
    _run("kenlm", EXIT_KENLM, [_tool(config, "build_binary"), "-S", config["memory"],
                               "-T", str(work / "bb-"), "-a", "255", "-q", "8", "-v", "trie",
                               str(filtered), str(binary)], timeout)
    log("kenlm: order %d LM %d bytes (%.1f s)" % (config["order"], binary.stat().st_size,
                                                  time.time() - t0))

    # 4. package (beside the target, so the final rename is atomic)
    try:
        result = scorer_mod.package(config["alphabet"], binary, vocab_path, staged, alpha, beta,
                                    force_utf8=False, log=log)
    except ScorerError as exc:
        raise RetrainError("package", str(exc), EXIT_PACKAGE) from exc
    summary.update(sha256=result.sha256, fst_states=result.num_states,
                   size=staged.stat().st_size)
    log("package: %d words, %d bytes, sha256 %s" % (result.words, summary["size"], result.sha256))
    if target.is_file() and _sha256(target) == result.sha256:
        log("unchanged: %s already holds this scorer" % target)
        return

    # 5. verify
    if config["verify"]:
        t0 = time.time()
        try:
            got = verifier(staged)
        except RetrainError:
            raise
        except Exception as exc:
            raise RetrainError("verify", "verification failed: %s" % exc, EXIT_VERIFY) from exc
        expected = config["verify_transcript"]
        norm = lambda text: " ".join(text.lower().split())  # noqa: E731
        if norm(got) != norm(expected):
            raise RetrainError("verify", "the new scorer decoded %s as %r, expected %r; the "
                               "installed scorer was left as it was"
                               % (config["verify_audio"], got, expected), EXIT_VERIFY)
        log("verify: decoded %r (%.1f s)" % (got, time.time() - t0))
        summary["verified_transcript"] = got
    else:
        log("verify: skipped (verify is false)")

    # 6. install
    had_previous_target = target.is_file()
    if had_previous_target:
        _atomic_copy_link(target, previous)
    os.replace(str(staged), str(target))
    summary["changed"] = True
    if config["reload_command"]:
        try:
            _run("install", EXIT_INSTALL, config["reload_command"], timeout)
        except RetrainError as exc:
            if had_previous_target:
                _atomic_copy_link(previous, target)
                what = "the previous scorer was put back"
            else:
                target.unlink()
                what = "the new scorer was removed"
            summary["changed"] = False
            raise RetrainError("install", "%s; %s" % (exc.detail, what), EXIT_INSTALL) from exc
        log("reload: %s" % " ".join(config["reload_command"]))


def rollback(config: Dict[str, Any], log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
             ) -> Dict[str, Any]:
    """Swap ``<output>.previous`` and ``<output>``, then reload."""
    paths = _paths(config)
    target, previous = paths["target"], paths["previous"]
    _check_not_base(config, target)
    if not previous.is_file():
        raise RetrainError("install", "nothing to roll back to: %s does not exist" % previous,
                           EXIT_INSTALL)
    with _Lock(paths["lock"], config["lock_timeout"], log):
        hold = target.with_name("." + target.name + ".rollback")
        if target.is_file():
            _atomic_copy_link(target, hold)
        os.replace(str(previous), str(target))
        if hold.exists():
            os.replace(str(hold), str(previous))
        # What is live now was not built from today's inputs: record that, so nothing rebuilds
        # it behind the user's back (the next edit does).
        _write_state(paths["state"], {"attempted": inputs_digest(config), "built_from": None,
                                      "sha256": _sha256(target), "result": "rolled back",
                                      "time": time.time()})
        if config["reload_command"]:
            _run("install", EXIT_INSTALL, config["reload_command"], config["timeout"])
    log("rolled back: %s is now the former %s" % (target, previous.name))
    return {"output_scorer": str(target), "changed": True, "rolled_back": True}


# --- command line ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="voice-retrain",
        description="Rebuild the generated DeepSpeech 0.7.4 scorer from Rhasspy sentences.ini: "
                    "expand → KenLM → package → verify → atomic swap → reload. Options override "
                    "the JSON --config file; see README.md for every key.")
    p.add_argument("--config", help="JSON file with the options below (keys with underscores)")
    p.add_argument("--sentences", action="append", help="sentences.ini (repeatable)")
    p.add_argument("--rhasspy-sentences", help="where Rhasspy's training requests keep their sentences "
                   "(read with --sentences when it exists; default rhasspy-sentences.ini beside the "
                   "output scorer)")
    p.add_argument("--slots-dir", dest="slots_dirs", action="append", help="slots directory (repeatable)")
    p.add_argument("--slot-programs-dir", dest="slot_programs_dirs", action="append",
                   help="slot programs directory (repeatable)")
    p.add_argument("--language", help="language of number words (default de)")
    p.add_argument("--model", help="acoustic model for the verification decode")
    p.add_argument("--alphabet", help="the model's alphabet.txt")
    p.add_argument("--base-scorer", help="German base scorer (never written; alpha/beta source)")
    p.add_argument("--output-scorer", help="generated scorer path to replace")
    p.add_argument("--kenlm-bin-dir", help="directory with lmplz, filter, build_binary")
    p.add_argument("--order", type=int, help="n-gram order (default 3)")
    p.add_argument("--memory", help="sort memory for lmplz/build_binary, e.g. 64M (default)")
    p.add_argument("--default-alpha", type=float, help="LM weight stored in the scorer")
    p.add_argument("--default-beta", type=float, help="word insertion bonus stored in the scorer")
    p.add_argument("--keep-case", dest="lowercase", action="store_const", const=False,
                   help="do not lowercase the sentences")
    p.add_argument("--transliterate", action="append", metavar="FROM=TO",
                   help="corpus replacement (repeatable; replaces the default ß=ss; 'none' clears)")
    p.add_argument("--max-sentences", type=int, help="limit on expanded sentences (default 200000)")
    p.add_argument("--verify-audio", help="verification WAV (16 kHz mono)")
    p.add_argument("--verify-transcript", help="expected transcript of the verification WAV")
    p.add_argument("--verify-command", help="verification command line with {model} {scorer} "
                                            "{audio} placeholders")
    p.add_argument("--no-verify", dest="verify", action="store_const", const=False,
                   help="skip the verification decode (not recommended)")
    p.add_argument("--reload-command", help="command run after the swap, e.g. "
                                            "'systemctl try-reload-or-restart voice-asr.service'")
    p.add_argument("--work-dir", help="parent directory for temporary files")
    p.add_argument("--keep-work-dir", action="store_const", const=True, help="keep temporary files")
    p.add_argument("--timeout", type=float, help="seconds per external command (default 900)")
    p.add_argument("--dry-run", action="store_true",
                   help="only expand and check the sentences; print the corpus")
    p.add_argument("--lock-timeout", type=float,
                   help="seconds to wait for another run to finish (default 1800)")
    p.add_argument("--max-passes", type=int,
                   help="builds per run while the inputs keep changing (default 10)")
    p.add_argument("--status", action="store_true",
                   help="only say whether the installed scorer was built from the inputs on disk: "
                        "exit 0 up to date, 10 a run is due, 11 these inputs failed")
    p.add_argument("--due-stamp", metavar="FILE",
                   help="with --status: touch FILE when a run is due (a path unit watching it "
                        "starts the retrain)")
    p.add_argument("--rollback", action="store_true",
                   help="swap <output>.previous back in and reload")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _overrides(args: argparse.Namespace) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key in OPTIONS:
        value = getattr(args, key, None)
        if value is None:
            continue
        if key in ("verify_command", "reload_command"):
            value = shlex.split(value)
        if key == "transliterate":
            mapping: Dict[str, str] = {}
            for item in value:
                if item.strip().lower() == "none":
                    mapping = {}
                    continue
                if "=" not in item:
                    raise RetrainError("config", "--transliterate expects FROM=TO, got %r" % item,
                                       EXIT_CONFIG)
                source, dest = item.split("=", 1)
                mapping[source] = dest
            value = mapping
        out[key] = value
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = _overrides(args)
        if args.status:
            config = load_config(args.config, overrides)
            result = status(config)
            print(json.dumps(result, indent=2) if args.json else "%s: %s" % (
                result["state"], result["output_scorer"]))
            if result["code"] == STATUS_DUE and args.due_stamp:
                touch_stamp(Path(args.due_stamp))
            return int(result["code"])
        if args.rollback:
            config = load_config(args.config, overrides, for_rollback=True)
            summary = rollback(config)
        else:
            config = load_config(args.config, overrides)
            # --dry-run prints the corpus from the streamed file (after the checks), unless the
            # summary with the corpus is printed as JSON
            summary = run(config, dry_run=args.dry_run,
                          corpus_out=sys.stdout if args.dry_run and not args.json else None)
    except RetrainError as exc:
        print("voice-retrain: error: %s" % exc, file=sys.stderr)
        return exc.code
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    elif args.dry_run:
        sys.stdout.flush()  # the corpus was written there by run()
    else:
        state = "installed" if summary.get("changed") else "unchanged"
        print("%s: %s (%s)" % (state, summary["output_scorer"], summary.get("sha256", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
