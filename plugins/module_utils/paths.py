# -*- coding: utf-8 -*-
"""Putting a role's directories and files in place on the Pi: the work of paths_state, shared with health_check.

Every directory exists with its mode and, where given, its owner and group (missing parents are made root-owned
0755, like ``mkdir -p`` as root); every path of ``absent`` is gone; every file has its content, owner, group and
mode. A file given by its sum (``src`` on the controller) whose content the Pi lacks is named in ``transfer``: the
action plugin (plugins/action/paths_state.py, which health_check's subclasses) copies exactly those to the Pi and
calls the module once more with them ``staged``; their sums are checked before they are put in place. ``ensure`` is
one call's whole work (plan, apply unless in check mode, the diff); ``plan``, ``apply``, ``states`` and ``diff`` are
its steps. A module imports it by its full name, and Ansible ships it to the Pi with the module (stdlib only,
Python 3.9+).
"""
from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shlex
import shutil
import stat
import subprocess
from typing import Any, BinaryIO, Callable, Dict, List, Optional

from ansible_collections.pivoice.voice_appliance.plugins.module_utils.durable import fsync_dir, replace_file, sha256_file

# The options a module that puts paths in place takes (AnsibleModule's argument_spec); ``staged`` is set by the
# action plugin on its second call, never by a task.
ARGUMENT_SPEC: Dict[str, Any] = {
    "directories": {"type": "list", "elements": "dict", "default": []},
    "files": {"type": "list", "elements": "dict", "default": []},
    "absent": {"type": "list", "elements": "path", "default": []},
    "staged": {"type": "dict", "default": {}},
}


class PathsError(Exception):
    """A request that cannot be carried out; the message names the path and the fix."""


def octal_mode(value: Any, what: str) -> int:
    """A mode given as an octal string ("0755"), or as the number YAML makes of an unquoted 0755; ``what`` names
    the path in the refusal."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        try:
            mode = int(value, 8) if isinstance(value, str) and value else -1
        except ValueError:
            mode = -1
    if not 0 <= mode <= 0o7777:
        raise PathsError("{}: mode {!r} is not an octal mode such as \"0755\" or \"2775\"; give it as a quoted string".format(
            what, value))
    return mode


def account_id(name: Any, what: str, kind: str = "owner") -> int:
    """The uid of an owner (``kind`` "owner") or the gid of a group ("group"), by name or number."""
    text = str(name)
    try:
        if text.isdigit():
            return int(text)
        return pwd.getpwnam(text).pw_uid if kind == "owner" else grp.getgrnam(text).gr_gid
    except KeyError:
        raise PathsError("{}: {} {!r} is no {} on this machine; create it first".format(
            what, kind, text, "account" if kind == "owner" else "group")) from None


def _mode(entry: Dict[str, Any], kind: str = "directory", path: Any = None) -> int:
    return octal_mode(entry.get("mode", ""), "{} {}".format(kind, entry.get("path") if path is None else path))


def _uid(name: str, path: str, kind: str = "directory") -> int:
    return account_id(name, "{} {}".format(kind, path), "owner")


def _gid(name: str, path: str, kind: str = "directory") -> int:
    return account_id(name, "{} {}".format(kind, path), "group")


def _state(path: str, known: Optional[str] = None) -> str:
    """One line that describes a path, for the diff; ``known`` is a regular file's sha256 when already computed."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "{}: absent".format(path) if not os.path.islink(path) else "{}: dangling link".format(path)
    if stat.S_ISDIR(st.st_mode):
        return "{}: directory {} {:04o}".format(path, _owner_group(st.st_uid, st.st_gid), stat.S_IMODE(st.st_mode))
    return "{}: file {} {:04o} sha256 {}".format(path, _owner_group(st.st_uid, st.st_gid), stat.S_IMODE(st.st_mode),
                                                 (known or sha256_file(path))[:12] if stat.S_ISREG(st.st_mode) else "-")


def states(result: Dict[str, Any], after: bool = False) -> Dict[str, str]:
    """The diff's line per changed path, before ``apply`` or (``after``) once it ran, without the files sent later.

    A file's sum is not computed again where it is known: before, the one the plan computed (when the size
    matched); after, the wanted one, which a written file was checked against and an unchanged content has.
    """
    known = {want["dest"]: want["sha256"] if after else want["found"] for want in result.get("files", [])}
    return {path: _state(path, known.get(path)) for path in result["changes"] if not (after and path in result["transfer"])}


def _owner_group(uid: int, gid: int) -> str:
    """OWNER:GROUP by name (the number when it has none)."""
    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return "{}:{}".format(owner, group)


_FILE_KEYS = {"dest", "mode", "owner", "group", "content", "sha256", "size", "force", "validate"}


def _plan_file(entry: Dict[str, Any], staged: Dict[str, str], coming: Any = (), check: bool = False) -> Dict[str, Any]:
    """One file: what it should be and what differs (``what``); refuses what cannot be carried out."""
    dest = str(entry.get("dest") or "")
    if not os.path.isabs(dest):
        raise PathsError("file {!r}: the destination must be absolute".format(dest))
    unknown = sorted(set(entry) - _FILE_KEYS)
    if unknown:
        raise PathsError("file {}: unknown key(s) {} (src is read by the action plugin; give content or src)".format(dest, ", ".join(unknown)))
    has_content, has_sum = entry.get("content") is not None, bool(entry.get("sha256"))
    if has_content == has_sum:
        raise PathsError("file {}: give exactly one of content and src".format(dest))
    validate = str(entry.get("validate") or "")
    if validate and "%s" not in validate:
        raise PathsError("file {}: validate {!r} must contain %s (where the new content's path goes)".format(dest, validate))
    if not isinstance(entry.get("force", True), bool):  # (the action plugin makes a task's yes/no one)
        raise PathsError("file {}: force {!r} is not true or false".format(dest, entry["force"]))
    owner, group = str(entry.get("owner") or ""), str(entry.get("group") or "")
    content = None if not has_content else str(entry["content"]).encode("utf-8")
    want: Dict[str, Any] = {"dest": dest, "uid": _uid(owner, dest, "file") if owner else -1,
                            "gid": _gid(group, dest, "file") if group else -1, "mode": _mode(entry, "file", dest),
                            "content": content, "validate": validate,
                            "sha256": hashlib.sha256(content).hexdigest() if content is not None else str(entry["sha256"]),
                            "size": len(content) if content is not None else int(entry.get("size", -1)),
                            "staged": staged.get(dest), "found": None, "what": []}
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        if os.path.islink(dest):
            raise PathsError("file {}: it is a link to nothing; remove it".format(dest)) from None
        # The directory may be made by this call, or (check mode) by an earlier task that did not run.
        if not (os.path.isdir(os.path.dirname(dest)) or os.path.dirname(dest) in coming or check):
            raise PathsError("file {}: its directory does not exist; list it in directories".format(dest)) from None
        want["what"] = ["created"]
        return want
    if not stat.S_ISREG(st.st_mode):
        raise PathsError("file {}: it exists but is not a regular file; move it away".format(dest))
    if not entry.get("force", True):
        return want  # a seed that is there belongs to its users
    if st.st_size == want["size"]:
        want["found"] = sha256_file(dest)  # (the diff shows it too)
    if want["found"] != want["sha256"]:
        want["what"].append("content")
    want["what"] += [name for name, differs in (("owner", want["uid"] not in (-1, st.st_uid)),
                                                ("group", want["gid"] not in (-1, st.st_gid)),
                                                ("mode", stat.S_IMODE(st.st_mode) != want["mode"])) if differs]
    return want


def plan(directories: List[Dict[str, Any]], absent: List[str], files: Optional[List[Dict[str, Any]]] = None,
         staged: Optional[Dict[str, str]] = None, check: bool = False) -> Dict[str, Any]:
    """What would change, without changing anything; refuses a request that cannot be carried out.

    ``transfer`` names the files given by their sum whose content is not on the Pi and not ``staged``.
    """
    changes: Dict[str, List[str]] = {}
    wanted: List[Dict[str, Any]] = []
    for entry in directories:
        path = str(entry.get("path") or "")
        if not os.path.isabs(path):
            raise PathsError("directory {!r}: the path must be absolute".format(path))
        owner, group = str(entry.get("owner") or ""), str(entry.get("group") or "")
        want = {"path": path, "uid": _uid(owner, path) if owner else -1, "gid": _gid(group, path) if group else -1,
                "mode": _mode(entry)}
        wanted.append(want)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):
                raise PathsError("directory {}: it is a link to nothing; remove it or point it at a directory".format(path)) from None
            changes[path] = ["created"]
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise PathsError("directory {}: it exists but is not a directory; move it away".format(path))
        what = [name for name, differs in (("owner", want["uid"] not in (-1, st.st_uid)), ("group", want["gid"] not in (-1, st.st_gid)),
                                           ("mode", stat.S_IMODE(st.st_mode) != want["mode"])) if differs]
        if what:
            changes[path] = what
    for path in absent:
        if not os.path.isabs(path):
            raise PathsError("absent path {!r}: the path must be absolute".format(path))
        if any(path == w["path"] for w in wanted):
            raise PathsError("{}: is both a directory to keep and a path to remove".format(path))
        if os.path.lexists(path):
            changes[path] = ["removed"]
    wanted_files: List[Dict[str, Any]] = []
    transfer: List[str] = []
    planned_dirs = {w["path"] for w in wanted if changes.get(w["path"]) == ["created"]}
    for entry in files or []:
        dest = str((entry or {}).get("dest") or "")
        if dest in changes or any(dest == w["dest"] for w in wanted_files):
            raise PathsError("{}: is listed twice (as a file and a directory, a removed path or another file)".format(dest))
        want = _plan_file(entry, staged or {}, planned_dirs, check)
        wanted_files.append(want)
        if want["what"]:
            changes[dest] = want["what"]
            if want["content"] is None and want["staged"] is None and ({"created", "content"} & set(want["what"])):
                transfer.append(dest)
    return {"changed": bool(changes), "changes": changes, "wanted": wanted, "absent": list(absent),
            "files": wanted_files, "transfer": transfer}


def _makedirs(path: str) -> None:
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        _makedirs(parent)
        os.mkdir(parent, 0o755)
        os.chmod(parent, 0o755)  # not narrowed by the umask


def apply(result: Dict[str, Any]) -> None:
    changes = result["changes"]
    for want in result["wanted"]:
        path = want["path"]
        if path not in changes:
            continue
        if "created" in changes[path] and not os.path.isdir(path):  # (a later entry's parent may have made it)
            _makedirs(path)
            os.mkdir(path, 0o700)  # opened up only once it has its owner
        if want["uid"] != -1 or want["gid"] != -1:
            os.chown(path, want["uid"], want["gid"])  # -1 keeps that one
        os.chmod(path, want["mode"])  # after chown: chown clears the setgid bit
    for want in result.get("files", []):
        what = want["what"]
        if not what:
            continue
        if "created" in what or "content" in what:
            if want["content"] is None and want["staged"] is None:
                continue  # the action plugin sends it (named in transfer)
            _write(want)
        else:
            if want["uid"] != -1 or want["gid"] != -1:
                os.chown(want["dest"], want["uid"], want["gid"])
            os.chmod(want["dest"], want["mode"])
    for path in result["absent"]:
        if path not in changes:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _write(want: Dict[str, Any]) -> None:
    """The new content beside the destination: owner, mode, sum checked, validated, fsynced, then renamed over it.
    A content the action plugin sent is itself renamed into place when it lies on the destination's filesystem."""
    dest = want["dest"]

    def fill(out: BinaryIO) -> None:
        if want["content"] is not None:
            out.write(want["content"])
        else:
            with open(want["staged"], "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)

    def check(temporary: str) -> None:
        got = sha256_file(temporary)
        if got != want["sha256"]:
            raise PathsError("file {}: the content that reached the Pi has sha256 {}, not {}; nothing was replaced, run again".format(
                dest, got, want["sha256"]))
        if want["validate"]:
            argv = [word.replace("%s", temporary) for word in shlex.split(want["validate"])]
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
            if done.returncode != 0:
                raise PathsError("file {}: the new content fails its validation ({}, exit {}): {}; the file was left as it was".format(
                    dest, want["validate"], done.returncode, done.stdout.strip()[-400:]))

    if want["content"] is None and _move_staged(want, check):
        return
    replace_file(dest, fill, want["mode"], want["uid"], want["gid"], check)


def _move_staged(want: Dict[str, Any], check: Callable[[str], None]) -> bool:
    """Put a sent content in place by renaming it, when it is a regular file on the destination's filesystem: its
    owner (this module's user when none is given, as for a written file) and mode set, fsynced, checked, renamed over
    the destination, the directory fsynced. No second copy of it on the Pi's disk then (a model's scorer is hundreds
    of MB): the free space a file needs is its size, as with ansible.builtin.copy. False, changing nothing, when the
    content lies elsewhere (another filesystem): it is copied beside the destination instead."""
    directory = os.path.dirname(want["dest"]) or "."
    try:
        fd = os.open(want["staged"], os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False  # (a link: copied, and its content checked, as before)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_dev != os.stat(directory).st_dev:
            return False
        os.fchown(fd, want["uid"] if want["uid"] != -1 else os.geteuid(), want["gid"] if want["gid"] != -1 else os.getegid())
        os.fchmod(fd, want["mode"])  # after chown, which clears setuid/setgid bits
        os.fsync(fd)
    finally:
        os.close(fd)
    check(want["staged"])
    os.replace(want["staged"], want["dest"])
    fsync_dir(directory)
    return True


def diff(result: Dict[str, Any], before: Dict[str, str], after: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    paths = sorted(result["changes"])
    return {"before": "".join(before[p] + "\n" for p in paths),
            "after": "".join(((after or {}).get(p) or _predicted(result, p)) + "\n" for p in paths)}


def _predicted(result: Dict[str, Any], path: str) -> str:
    for want in result["wanted"]:
        if want["path"] == path:
            uid, gid = want["uid"], want["gid"]
            if -1 in (uid, gid):  # kept as they are (a new directory: the module's own)
                st = os.stat(path) if os.path.exists(path) else None
                uid = uid if uid != -1 else (st.st_uid if st else os.getuid())
                gid = gid if gid != -1 else (st.st_gid if st else os.getgid())
            return "{}: directory {} {:04o}".format(path, _owner_group(uid, gid), want["mode"])
    for want in result.get("files", []):
        if want["dest"] == path:
            st = os.stat(path) if os.path.exists(path) else None
            uid = want["uid"] if want["uid"] != -1 else (st.st_uid if st else os.getuid())
            gid = want["gid"] if want["gid"] != -1 else (st.st_gid if st else os.getgid())
            return "{}: file {} {:04o} sha256 {}".format(path, _owner_group(uid, gid), want["mode"], want["sha256"][:12])
    return "{}: absent".format(path)


def ensure(directories: List[Dict[str, Any]], absent: List[str], files: Optional[List[Dict[str, Any]]] = None,
           staged: Optional[Dict[str, str]] = None, check: bool = False, want_diff: bool = False) -> Dict[str, Any]:
    """One call's work: the plan, carried out unless ``check``; the result a module returns (``changed``,
    ``changes``, ``transfer``, ``files``, and ``diff`` when ``want_diff`` and something changed). PathsError or
    OSError for a request that cannot be carried out (nothing changed then, short of an OSError while applying)."""
    result = plan(directories, absent, files, staged, check)
    before = states(result) if want_diff else {}
    if result["changed"] and not check:
        apply(result)
    after = states(result, after=True) if want_diff and not check else None
    # transfer_index: the same files by their place in ``files``. Ansible masks, in a module's result, every string
    # that equals (or holds) a value of a no_log option, a path too (python_env's layer env may name pip's CA file):
    # the action plugin finds the files to send by their place, which no masking touches.
    out: Dict[str, Any] = {"changed": result["changed"], "changes": result["changes"], "transfer": result["transfer"],
                           "transfer_index": [number for number, want in enumerate(result["files"])
                                              if want["dest"] in result["transfer"]],
                           "files": [want["dest"] for want in result["files"]]}
    if want_diff and result["changed"]:
        out["diff"] = diff(result, before, after)
    return out


def own_diff(out: Dict[str, Any], staged: Optional[Dict[str, str]]) -> Dict[str, List[Dict[str, str]]]:
    """The paths' part of a module's result ``diff`` (a list, to which a module adds its own work's diffs): ``ensure``'s
    diff, or none in the second run, which gets the sent files (``staged``) that the first run's diff already showed as
    they will be. Empty (no ``diff`` key) when nothing changed or no diff was asked for."""
    return {"diff": [out["diff"]]} if "diff" in out and not staged else {}


def in_place(out: Dict[str, Any], check: bool = False) -> bool:
    """Whether every file of ``ensure``'s result ``out`` holds its content now: nothing left to send and (check mode,
    where nothing was written) no file to be created or rewritten. A wrong owner, group or mode alone does not count:
    the content is there to be read."""
    if out["transfer"]:
        return False
    return not (check and any({"created", "content"} & set(what) for path, what in out["changes"].items()
                              if path in out["files"]))
