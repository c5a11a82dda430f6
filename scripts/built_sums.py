#!/usr/bin/env python3
"""Pin the built artifacts a mirror serves: write their sha256 sums into a file the fleet commits.

The tools tarball, the compat wheels and the patched Rhasspy wheels are built on a controller
(named by a hash of their inputs) and served to Pis from a mirror. A Pi takes such a file from the
mirror only if its sum equals the one pinned in the repository it pulls (``built-artifacts.sha256``
at the repository's root, sha256sum's format, paths relative to the artifact cache): the mirror
cannot hand a Pi a file the fleet owner did not build.

    python scripts/built_sums.py [--cache DIR] [--output FILE] [--replace]

reads every built artifact in the controller's cache (default ``$PI_VOICE_CACHE/artifacts``, else
``~/.cache/pi-voice/artifacts``) and merges their sums into FILE (default: built-artifacts.sha256
beside this script's repository). A path already pinned with another sum is an error (a rebuild
that differs from what the fleet runs) unless --replace. Commit the file, then push.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

BUILT_DIRS = ("deepspeech-tools", "compat-wheels", "rhasspy-asr-wheels")
SUFFIXES = (".tar.gz", ".whl")
_LINE = re.compile(r"^([0-9a-f]{64}) [ *]([^\s/][^\s]*)$")
HEADER = ("# sha256 sums of the built artifacts Pis take from the mirror (role artifact_stage, fetch_built).\n"
          "# Written by scripts/built_sums.py from the cache of the controller that staged them; commit it.\n")


class SumsError(ValueError):
    """A sums file or a cache that cannot be pinned, with the file and the fix in the message."""


def parse(text: str, source: str = "built-artifacts.sha256") -> Dict[str, str]:
    """The pinned sums of ``text`` (sha256sum lines, # comments): {relative path: sha256}."""
    sums: Dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line.rstrip())
        if not match:
            raise SumsError("{}:{}: {!r} is not 'SHA256  PATH' (64 lowercase hex digits, two spaces, a relative path); "
                            "write the file with scripts/built_sums.py".format(source, number, line))
        digest, path = match.groups()
        if ".." in path.split("/"):
            raise SumsError("{}:{}: the path {!r} leaves the artifact cache; give a path below it".format(source, number, path))
        if sums.get(path, digest) != digest:
            raise SumsError("{}:{}: {} is pinned twice with different sums; keep one".format(source, number, path))
        sums[path] = digest
    return sums


def render(sums: Dict[str, str]) -> str:
    return HEADER + "".join("{}  {}\n".format(sums[path], path) for path in sorted(sums))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_built(cache: Path) -> Dict[str, str]:
    """Every built artifact in the cache (not the build virtualenv, hidden or partial files): {path: sha256}."""
    found: Dict[str, str] = {}
    for top in BUILT_DIRS:
        base = cache / top
        if not base.is_dir():
            continue
        for root, dirs, files in os.walk(str(base)):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "build-venv")
            for name in sorted(files):
                path = Path(root) / name
                if name.startswith(".") or not name.endswith(SUFFIXES) or path.is_symlink():
                    continue
                found[path.relative_to(cache).as_posix()] = sha256_file(path)
    return found


def merge(old: Dict[str, str], new: Dict[str, str], output: str, replace: bool) -> Dict[str, str]:
    conflicts = sorted(p for p in new if p in old and old[p] != new[p])
    if conflicts and not replace:
        raise SumsError("{} pins other sums for {}: these files in the cache differ from what the fleet runs. "
                        "Keep the pinned files, or give --replace to pin the cache's (every Pi then needs the new "
                        "files from the mirror).".format(output, ", ".join(conflicts)))
    return dict(old, **new)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(str(tmp), str(path))


def default_cache() -> Path:
    base = os.environ.get("PI_VOICE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pi-voice")
    return Path(base) / "artifacts"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache(), help="the controller's artifact cache")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent.parent / "built-artifacts.sha256")
    parser.add_argument("--replace", action="store_true", help="pin the cache's sum where it differs from the file's")
    args = parser.parse_args(argv)
    try:
        found = cached_built(args.cache)
        if not found:
            raise SumsError("no built artifacts in {} ({}): stage first (playbooks/stage.yml), or give --cache".format(
                args.cache, ", ".join(BUILT_DIRS)))
        old = parse(args.output.read_text(encoding="utf-8"), str(args.output)) if args.output.exists() else {}
        sums = merge(old, found, str(args.output), args.replace)
    except (SumsError, OSError) as error:
        print("built_sums: {}".format(error), file=sys.stderr)
        return 1
    write_atomic(args.output, render(sums))
    print("built_sums: {} pins {} built artifacts ({} new); commit it.".format(
        args.output, len(sums), len(set(sums) - set(old))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
