#!/usr/bin/env bash
# Builds the appliance's scorer tools tarball for one Debian architecture, on the controller:
#   * static KenLM lmplz, build_binary, filter from the pinned kenlm sdist (artifacts.yml
#     kenlm_sdist), compiled in an amd64 Debian bookworm container: natively for amd64,
#     cross-compiled with Debian multiarch for armhf/arm64 (FACTS §7; -DFORCE_STATIC=ON, so one
#     build runs on bullseye, bookworm and trixie);
#   * the project's voice_appliance wheel and the pure-Python wheels of requirements-retrain.txt
#     (every line, whatever its marker: the Pi picks by its own Python);
#   * bin/smoke-test (tiny corpus -> lmplz -> filter -> build_binary) and MANIFEST.json.
# Output: OUT (a reproducible .tar.gz) and OUT.sha256. Called by roles/deepspeech_tools
# (tasks/build.yml) once per architecture and inputs hash; usable by hand:
#
#   harness/build-tools.sh --arch armhf --sdist kenlm-0.2.0.tar.gz --out deepspeech-tools-armhf-X.tar.gz
#
# Options: --image (default pi-voice/debian:bookworm-amd64, built by harness/setup.sh),
# --python (controller Python with pip, default python3), --jobs (default 1), --hash (recorded).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
arch="" sdist="" out="" hash="" image=pi-voice/debian:bookworm-amd64 python=python3 jobs=1
while [ $# -gt 0 ]; do
    case "$1" in --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;; esac
    case "$1" in
        --arch) arch=$2; shift 2 ;;
        --sdist) sdist=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --hash) hash=$2; shift 2 ;;
        *) echo "build-tools.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
case "$arch" in
    amd64) triplet=x86_64-linux-gnu ;;
    armhf) triplet=arm-linux-gnueabihf ;;
    arm64) triplet=aarch64-linux-gnu ;;
    *) echo "build-tools.sh: --arch must be amd64, armhf or arm64, not '$arch'" >&2; exit 2 ;;
esac
[ -f "$sdist" ] || { echo "build-tools.sh: --sdist '$sdist' is not a file (stage kenlm_sdist first)" >&2; exit 2; }
[ -n "$out" ] || { echo "build-tools.sh: --out is required" >&2; exit 2; }
docker image inspect "$image" >/dev/null 2>&1 \
    || { echo "build-tools.sh: docker image '$image' is missing: run harness/setup.sh (make setup)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg
mkdir -p "$pkg/bin" "$pkg/wheels" "$work/kenlm" "$work/src"
cp "$sdist" "$work/kenlm/kenlm.tar.gz"

echo "== KenLM for $arch in $image" >&2
start=$(date +%s)
# The container runs as root; the results are handed back to the caller's uid.
docker run --rm -i --network host -e ARCH="$arch" -e TRIPLET="$triplet" -e JOBS="$jobs" \
    -e OWNER="$(id -u):$(id -g)" -v "$work/kenlm:/work" "$image" bash -s <<'INNER' >&2
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
libs="libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"
if [ "$ARCH" = amd64 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends cmake make g++ binutils $libs >/dev/null
    toolchain=""
else
    dpkg --add-architecture "$ARCH"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends cmake make "crossbuild-essential-$ARCH" \
        $(for l in $libs; do echo "$l:$ARCH"; done) >/dev/null
    cat >/work/toolchain.cmake <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR $ARCH)
set(CMAKE_C_COMPILER $TRIPLET-gcc)
set(CMAKE_CXX_COMPILER $TRIPLET-g++)
set(CMAKE_FIND_ROOT_PATH /usr/$TRIPLET /usr/lib/$TRIPLET)
set(CMAKE_LIBRARY_ARCHITECTURE $TRIPLET)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
EOF
    toolchain="-DCMAKE_TOOLCHAIN_FILE=/work/toolchain.cmake"
fi
mkdir -p /build && tar -xzf /work/kenlm.tar.gz -C /build --strip-components=1
cd /build && mkdir -p out && cd out
cmake .. $toolchain -DFORCE_STATIC=ON -DCMAKE_BUILD_TYPE=Release >/work/cmake.log 2>&1 || { tail -n 40 /work/cmake.log; exit 1; }
nice make -j"$JOBS" lmplz build_binary filter >/work/make.log 2>&1 || { tail -n 40 /work/make.log; exit 1; }
mkdir -p /work/bin
for b in lmplz build_binary filter; do
    "$TRIPLET-strip" -o "/work/bin/$b" "bin/$b" 2>/dev/null || strip -o "/work/bin/$b" "bin/$b"
done
chown -R "$OWNER" /work
INNER
cp "$work/kenlm/bin/"* "$pkg/bin/"
echo "== KenLM built in $(( $(date +%s) - start )) s" >&2

echo "== wheels" >&2
# A clean copy of the package source, so no stale build/ or egg-info of the work tree leaks in.
src=$repo/python/voice-appliance
mkdir -p "$work/src/voice-appliance"
cp "$src/pyproject.toml" "$src/README.md" "$work/src/voice-appliance/"
cp -r "$src/voice_appliance" "$work/src/voice-appliance/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m pip wheel -q --no-deps -w "$pkg/wheels" "$work/src/voice-appliance" >&2
# Every pinned requirement, marker stripped (both networkx pins are bundled; pip on the Pi picks).
grep -v '^\s*#' "$src/requirements-retrain.txt" | sed 's/;.*//; s/\s//g' | grep -v '^$' >"$work/reqs.txt"
while read -r req; do
    "$python" -m pip wheel -q --no-deps -w "$pkg/wheels" "$req" >&2
done <"$work/reqs.txt"
cp "$src/requirements-retrain.txt" "$pkg/requirements-retrain.txt"

cat >"$pkg/bin/smoke-test" <<'SMOKE'
#!/bin/sh
# Proves the KenLM tools run on this machine: a tiny corpus through lmplz, filter, build_binary.
set -eu
bin=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'das ist ein test\ndas ist gut\nein test\n' >"$tmp/corpus.txt"
printf 'das ist ein test gut\n' >"$tmp/vocab.txt"
"$bin/lmplz" -o 2 -S 64M -T "$tmp" --discount_fallback --text "$tmp/corpus.txt" --arpa "$tmp/lm.arpa" 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
"$bin/filter" single "vocab:$tmp/vocab.txt" "$tmp/filtered.arpa" <"$tmp/lm.arpa" 2>>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
"$bin/build_binary" -S 64M -a 255 -q 8 -v trie "$tmp/filtered.arpa" "$tmp/lm.binary" >>"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
[ -s "$tmp/lm.binary" ] || { echo "build_binary wrote nothing" >&2; exit 1; }
echo "kenlm ok: $(wc -c <"$tmp/lm.binary") byte LM"
SMOKE
chmod 0755 "$pkg/bin/smoke-test"

"$python" - "$pkg" "$arch" "$hash" "$sdist" <<'PY'
import hashlib, json, os, sys
pkg, arch, key, sdist = sys.argv[1:5]
def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
files = {}
for root, _, names in os.walk(pkg):
    for n in sorted(names):
        p = os.path.join(root, n)
        files[os.path.relpath(p, pkg)] = sha(p)
wheels = sorted(f for f in os.listdir(os.path.join(pkg, "wheels")))
manifest = {"arch": arch, "inputs_hash": key, "kenlm_sdist_sha256": sha(sdist), "wheels": wheels, "files": dict(sorted(files.items()))}
with open(os.path.join(pkg, "MANIFEST.json"), "w") as f:
    json.dump(manifest, f, indent=1)
    f.write("\n")
PY

mkdir -p "$(dirname "$out")"
# A temporary name of this build's own: two runs building the same tarball at once (two scenarios
# staging in parallel) each rename a complete file into place, never interleave writes.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$pkg" -cf - . | gzip -n >"$out.tmp.$$"
sum=$(sha256sum "$out.tmp.$$" | cut -d' ' -f1)
echo "$sum  $(basename "$out")" >"$out.sha256.tmp.$$"
mv "$out.tmp.$$" "$out"
mv "$out.sha256.tmp.$$" "$out.sha256"
echo "== $out ($sum)" >&2
