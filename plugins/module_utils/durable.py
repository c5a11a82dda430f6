# -*- coding: utf-8 -*-
"""Durable file writes, links and sums for the collection's modules (stdlib only, Python 3.9+).

Every module that puts a file on the Pi writes it the same way: a temporary file beside the destination,
its owner and mode set, its content fsynced and checked, then renamed over the destination and the
directory fsynced. A reader sees the old file or the new one, never a part, and a power cut after the task
reported success does not take the change back. A failure leaves the destination as it was and removes the
temporary file. A link (``current``, ``previous``) is switched the same way, and only to a version directory
beside it (``version_dir``). A model version's ``.verified`` marker is trusted only as ``marker_holds`` says
(model_marker looks, model_links switches only to a version it vouches for).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tempfile
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple


# A sha256 sum as the collection writes and pins it: 64 lowercase hexadecimal digits (callers that take a sum from
# a person or a sum file lower() it first). The one pattern of the modules, filters and action plugins.
SHA256 = re.compile("[0-9a-f]{64}")


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a whole sha256 sum (as is: no case folding, no stripping)."""
    return SHA256.fullmatch(text) is not None


def sha256_file(path: str, follow: bool = True) -> str:
    """The sha256 of a file's content (``follow=False`` refuses a link: OSError)."""
    fd = os.open(path, os.O_RDONLY | (0 if follow else getattr(os, "O_NOFOLLOW", 0)))
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: str) -> None:
    """Make the directory's entries (a rename, a new link) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_link(directory: str, name: str) -> str:
    """Where directory/name points ("" when it is no link or missing)."""
    try:
        return os.readlink(os.path.join(directory, name))
    except OSError:
        return ""


class VersionError(ValueError):
    """A name that is not a version directory beside the links; the message names it and the versions there."""


def _versions(directory: str, links: Sequence[str] = ()) -> List[str]:
    """The version directories in ``directory``, sorted: its directories that are no link, not hidden and not ``links``
    ([] when it does not exist)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    return sorted(entry.name for entry in entries
                  if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".") and entry.name not in links)


def version_dir(directory: str, version: str, what: str = "version", links: Sequence[str] = ("current",),
                predict: bool = False) -> str:
    """The path of the version ``version`` in ``directory``, the only kind of target a link there may get: a plain
    name (not empty, not hidden, no "/", none of the ``links``) of a directory that is no link. ``what`` names the
    value in the message. With ``predict`` (check mode) a version an earlier task would have made may be missing
    still. Anything else is a VersionError (its message says nothing was changed: the modules ask first)."""
    if not version or "/" in version or version.startswith(".") or version in links:
        raise VersionError("{} must be the name of a version directory in {} (not empty, not hidden, no '/', not {} {}); "
                           "got {!r}".format(what, directory, "the link" if len(links) == 1 else "the links",
                                             " or ".join(links), version))
    path = os.path.join(directory, version)
    if predict and not os.path.lexists(path):
        return path
    if not os.path.isdir(path) or os.path.islink(path):
        there = _versions(directory, links)
        raise VersionError("{} {!r} is not a version in {} (no such directory; {}); nothing was changed".format(
            what, version, directory, "the versions there: " + ", ".join(there) if there else "there are no versions"))
    return path


def set_link(directory: str, name: str, target: str) -> bool:
    """Point directory/name at target atomically: a new link beside it renamed over it, then the directory fsynced
    (a reader sees the old or the new target, never none); "" removes it. Whether anything changed."""
    path = os.path.join(directory, name)
    if read_link(directory, name) == target and (target or not os.path.lexists(path)):
        return False
    if not target:
        os.unlink(path)
    else:
        temporary = os.path.join(directory, ".{}.new-{}".format(name, os.getpid()))
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(target, temporary)
        os.replace(temporary, path)
    fsync_dir(directory)
    return True


# The marker a model version directory gets once DeepSpeech proved its files (JSON: file kind -> sha256).
MARKER = ".verified"


def marker_file_name(spec: Dict[str, Any]) -> str:
    """The name in the version directory of a file described by ``spec`` (its ``name``, else its ``path``'s base name)."""
    return os.path.basename(str(spec.get("name") or spec["path"]))


def marker_sums(files: Dict[str, Dict[str, Any]]) -> Dict[str, str]:
    """What a marker for ``files`` holds: per file kind its sha256."""
    return {kind: str(spec["checksum"]) for kind, spec in files.items()}


def marker_files_error(files: Any, option: str = "files") -> str:
    """Why ``files`` (the option ``option``) cannot describe a version's files ("" when it can): a dict per file kind
    with ``name`` (or ``path``), ``checksum`` and ``size``."""
    if not isinstance(files, dict) or not files:
        return ("{} must be a dict naming at least one file (file kind: name or path, checksum, size), as the staged "
                "files are described; got {!r}".format(option, files))
    for kind, spec in sorted(files.items()):
        if not isinstance(spec, dict) or not {"checksum", "size"} <= set(spec) or not (spec.get("name") or spec.get("path")):
            return "{}.{} must have name (or path), checksum and size, got {!r}".format(option, kind, spec)
        try:
            int(spec["size"])
        except (TypeError, ValueError):
            return "{}.{}.size must be a number of bytes, got {!r}".format(option, kind, spec["size"])
    return ""


def marker_holds(path: str, files: Dict[str, Dict[str, Any]]) -> Tuple[bool, str]:
    """Whether the marker in the version directory ``path`` vouches for ``files``; the reason when it does not: no
    marker, a marker that is no JSON (torn by a crash), one naming other sums, or a file missing, not a regular file
    or not of its verified size (emptied or cut short by a power loss). The files are not read (their sums were
    checked when they were copied)."""
    marker = os.path.join(path, MARKER)
    try:
        with open(marker, encoding="utf-8") as handle:
            recorded = json.load(handle)
    except FileNotFoundError:
        return False, "no marker"
    except (OSError, ValueError) as exc:
        return False, "unreadable marker %s (%s)" % (marker, exc)
    if recorded != marker_sums(files):
        return False, "marker %s names other files than the staged ones" % marker
    for kind, spec in sorted(files.items()):
        name = os.path.join(path, marker_file_name(spec))
        try:
            info = os.lstat(name)
        except OSError:
            return False, "%s file %s is missing" % (kind, name)
        if not stat.S_ISREG(info.st_mode):
            return False, "%s file %s is not a regular file" % (kind, name)
        if info.st_size != int(spec["size"]):
            return False, "%s file %s has %d bytes, %d were verified (damaged, e.g. by a power loss)" % (
                kind, name, info.st_size, int(spec["size"]))
    return True, ""


def replace_file(dest: str, fill: Callable[[BinaryIO], None], mode: int, uid: int = -1, gid: int = -1,
                 check: Optional[Callable[[str], None]] = None, prefix: str = "", exclusive: bool = False) -> None:
    """Write ``dest`` atomically and durably: ``fill`` writes the content into a temporary file beside it, which
    gets ``mode`` (and ``uid``/``gid`` unless -1) and is fsynced; ``check(temporary_path)`` may raise to refuse
    it; then it is renamed over ``dest`` and the directory fsynced.

    With ``exclusive`` ``dest`` is only made, never replaced (a seed that belongs to its users once it is there): the
    temporary file is linked to ``dest`` instead, which raises FileExistsError (the temporary file removed, ``dest``
    untouched) when anything, a dangling link too, is there by then."""
    directory = os.path.dirname(dest) or "."
    fd, temporary = tempfile.mkstemp(prefix=prefix or "." + os.path.basename(dest) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            if uid != -1 or gid != -1:
                os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)  # after chown, which clears setuid/setgid bits
            os.fsync(handle.fileno())
        if check is not None:
            check(temporary)
        if exclusive:
            _link_new(temporary, dest)
        else:
            os.replace(temporary, dest)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    fsync_dir(directory)


# What link() says on a filesystem that has no hard links.
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


def _link_new(temporary: str, dest: str) -> None:
    """``temporary`` becomes ``dest`` only if nothing is there: linked (atomic, refused by the kernel when ``dest``
    exists), then the temporary name removed. A filesystem without hard links gets a rename after a last look."""
    try:
        os.link(temporary, dest)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dest) from None
        os.replace(temporary, dest)
        return
    os.unlink(temporary)


# The argument spec of a module's ``receipt`` option (its documentation: doc_fragments/receipt.py).
RECEIPT_SPEC = {"type": "dict", "options": {"path": {"type": "path", "required": True},
                                            "content": {"type": "str", "required": True}}}


class ReceiptError(OSError):
    """A receipt that is not JSON, or a written one that did not read back as what was meant; the old receipt is left
    as it was. An OSError, so that each module's handling of a failed write reports it."""


def _json_value(text: str) -> object:
    """The value of the JSON ``text`` (strict: NaN and Infinity are no JSON); ValueError when it is none."""
    def refuse(constant: str) -> object:
        raise ValueError("{} is no JSON value".format(constant))
    return json.loads(text, parse_constant=refuse)


def write_receipt(path: str, content: str, check: bool = False) -> bool:
    """A receipt, the file that says what a module made live (a local fact), holds ``content``, a JSON document:
    owned by this process's user, mode 0644, written atomically (its directory made if missing) when it differs.
    Whether it was (or, with ``check``, would be) written. Content that is no JSON is refused before anything is
    written, also in check mode; the temporary file is read back before it replaces the receipt and must hold exactly
    the content, else it is removed and the old receipt left as it was (ReceiptError)."""
    try:
        _json_value(content)
    except ValueError as error:
        raise ReceiptError("the receipt {} must be a JSON document, and its content is none ({}); it was left as it "
                           "was".format(path, error)) from None
    data = content.encode("utf-8")
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            if handle.read() == data and st.st_mode & 0o7777 == 0o644 and (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
                return False
    except OSError:
        pass

    def proven(temporary: str) -> None:
        """The temporary file holds exactly the content meant (which is JSON: refused above otherwise)."""
        with open(temporary, "rb") as handle:
            written = handle.read()
        if written != data:
            raise ReceiptError("the receipt written for {} reads back as {!r}, not the content meant ({!r}); it was left "
                               "as it was".format(path, written[:200].decode("utf-8", "replace"), content[:200]))

    if not check:
        os.makedirs(os.path.dirname(path) or ".", 0o755, exist_ok=True)
        replace_file(path, lambda out: out.write(data), 0o644, check=proven)
    return True


def receipt_result(receipt: Optional[Dict[str, str]], check: bool = False) -> Dict[str, Any]:
    """Write a module's ``receipt`` (write_receipt; call it once what the receipt describes is live) and say so in the
    module's result: ``receipt_changed``, whether it was (in check mode, would be) written, and ``receipt``, its path and
    content as the Pi holds them after the run. A later task may take that as read instead of asking the Pi again, so
    it is left out when the Pi does not hold it: in check mode when it would be written, and without a receipt."""
    if not receipt:
        return {"receipt_changed": False}
    changed = write_receipt(receipt["path"], receipt["content"], check)
    out: Dict[str, Any] = {"receipt_changed": changed}
    if not (check and changed):
        out["receipt"] = {"path": receipt["path"], "content": receipt["content"]}
    return out
