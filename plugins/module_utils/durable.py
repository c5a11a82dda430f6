# -*- coding: utf-8 -*-
"""Durable file writes, links and sums for the collection's modules (stdlib only, Python 3.9+).

Every module that puts a file on the Pi writes it the same way: a temporary file beside the destination,
its owner and mode set, its content fsynced and checked, then renamed over the destination and the
directory fsynced. A reader sees the old file or the new one, never a part, and a power cut after the task
reported success does not take the change back. A failure leaves the destination as it was and removes the
temporary file. A link (``current``, ``previous``) is switched the same way, and only to a version directory
beside it (``version_dir``).
"""
from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence


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


def write_receipt(path: str, content: str, check: bool = False) -> bool:
    """A receipt, the file that says what a module made live (a local fact), holds ``content``: owned by this
    process's user, mode 0644, written atomically (its directory made if missing) when it differs. Whether it was
    (or, with ``check``, would be) written."""
    data = content.encode("utf-8")
    try:
        st = os.stat(path)
        with open(path, "rb") as handle:
            if handle.read() == data and st.st_mode & 0o7777 == 0o644 and (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
                return False
    except OSError:
        pass
    if not check:
        os.makedirs(os.path.dirname(path) or ".", 0o755, exist_ok=True)
        replace_file(path, lambda out: out.write(data), 0o644)
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
