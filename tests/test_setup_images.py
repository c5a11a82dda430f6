"""harness/setup.sh build_images: the images that are not current are built side by side, each with its own log.

setup.sh is sourced (it then only defines its functions) with a stand-in build-image.sh that sleeps and
may fail, and a stand-in `docker` that reports which images already carry their recipe's key.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Dict, Sequence

REPO = Path(__file__).resolve().parent.parent

FAKE_BUILD = """#!/usr/bin/env bash
set -euo pipefail
echo "build $1-$2 started" >>"$FAKE_CALLS"
for i in $(seq 1 50); do echo "$1-$2 line $i"; done
sleep "${FAKE_SLEEP:-1}"
if [ "$1-$2" = "${FAKE_FAIL:-}" ]; then echo "$1-$2 broke" >&2; exit 3; fi
echo "$1-$2 ready"
"""

FAKE_DOCKER = """#!/usr/bin/env bash
# docker image inspect -f FORMAT TAG: the recipe key listed for TAG in $FAKE_LABELS, else no such image.
tag=${!#}
key=$(awk -v tag="$tag" '$1 == tag { print $2 }' "$FAKE_LABELS")
[ -n "$key" ] || exit 1
echo "$key"
"""


def _harness(tmp_path: Path) -> Path:
    fake = tmp_path / "harness"
    fake.mkdir()
    (fake / "build-image.sh").write_text(FAKE_BUILD, encoding="utf-8")
    (fake / "build-image.sh").chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER, encoding="utf-8")
    (bin_dir / "docker").chmod(0o755)
    return fake


def _key(fake: Path, spec: str) -> str:
    release, arch = spec.rsplit("-", 1)
    recipe = (fake / "build-image.sh").read_bytes() + "{} {}\n".format(release, arch).encode()
    return hashlib.sha256(recipe).hexdigest()[:16]


def _build_images(tmp_path: Path, images: str, current: Sequence[str] = (),
                  extra: Dict[str, str] = {}) -> subprocess.CompletedProcess:
    fake = tmp_path / "harness"
    (tmp_path / "labels").write_text("".join("pi-voice/debian:{} {}\n".format(spec, _key(fake, spec))
                                             for spec in current), encoding="utf-8")
    env = dict(os.environ, PI_VOICE_CACHE=str(tmp_path / "cache"), PI_VOICE_IMAGES=images,
               PATH=str(tmp_path / "bin") + os.pathsep + os.environ["PATH"],
               FAKE_CALLS=str(tmp_path / "calls"), FAKE_LABELS=str(tmp_path / "labels"), **extra)
    script = 'source "$1"; here=$2; build_images'
    return subprocess.run(["bash", "-c", script, "bash", str(REPO / "harness" / "setup.sh"), str(fake)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=60)


def test_missing_images_are_built_side_by_side_and_current_ones_skipped(tmp_path: Path) -> None:
    _harness(tmp_path)
    started = time.monotonic()
    res = _build_images(tmp_path, "bookworm-amd64 bookworm-armhf trixie-arm64 bookworm-armhf",
                        current=["trixie-arm64"], extra={"FAKE_SLEEP": "2"})
    elapsed = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    assert elapsed < 3.5, "two 2 s builds took {:.1f} s: not side by side".format(elapsed)
    calls = sorted((tmp_path / "calls").read_text(encoding="utf-8").splitlines())
    assert calls == ["build bookworm-amd64 started", "build bookworm-armhf started"]  # once each, never the current one
    assert "image pi-voice/debian:trixie-arm64 is current (" in res.stdout
    # Whole seconds: a 2 s build reads 0:02 or, across a second's edge, 0:03.
    assert re.search(r"image pi-voice/debian:bookworm-amd64 built in 0:0[23]\n", res.stdout), res.stdout
    assert re.search(r"image pi-voice/debian:bookworm-armhf built in 0:0[23]\n", res.stdout), res.stdout
    assert re.search(r"2 images built side by side in 0:0[23]\n", res.stdout), res.stdout
    images = tmp_path / "cache" / "images"
    for spec in ("bookworm-amd64", "bookworm-armhf"):
        assert (images / "build-{}.log".format(spec)).read_text(encoding="utf-8").endswith(spec + " ready\n")
    assert not list(images.glob("*.result"))


def test_all_current_builds_nothing(tmp_path: Path) -> None:
    _harness(tmp_path)
    res = _build_images(tmp_path, "bookworm-amd64 trixie-arm64", current=["bookworm-amd64", "trixie-arm64"])
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "calls").exists()
    assert res.stdout.count(" is current (") == 2 and "built" not in res.stdout


def test_a_failed_build_is_named_with_its_log_after_the_others_finish(tmp_path: Path) -> None:
    _harness(tmp_path)
    res = _build_images(tmp_path, "bookworm-amd64 bookworm-armhf", extra={"FAKE_FAIL": "bookworm-amd64"})
    assert res.returncode == 1
    log = tmp_path / "cache" / "images" / "build-bookworm-amd64.log"
    assert "image build failed: bookworm-amd64 ({})".format(log) in res.stderr
    # The log's tail (about 40 lines), not all of it; the build that worked was waited for and reported.
    assert "bookworm-amd64 broke" in res.stderr and "bookworm-amd64 line 50" in res.stderr
    assert "bookworm-amd64 line 5\n" not in res.stderr
    assert re.search(r"image pi-voice/debian:bookworm-armhf built in 0:0[12]\n", res.stdout), res.stdout
    assert "bookworm-armhf" not in res.stderr
