#!/usr/bin/env bash
# Prepare this machine to test the appliance: host packages, a Docker engine, ARM emulation,
# the controller's Python virtualenv and the images that stand in for Raspberry Pis.
#
# Idempotent: every step checks before it acts, so a second run takes seconds.
# Used by `make demo`, `make test` and `.ci/run`.
#
# Knobs (environment):
#   PI_VOICE_CACHE   cache outside the clone (images, venvs, downloads); default ~/.cache/pi-voice
#   PI_VOICE_IMAGES  images to build (default "bookworm-amd64 bookworm-armhf bookworm-arm64"; also e.g. bullseye-armhf)
#   DEBIAN_MIRROR    Debian mirror for debootstrap; default: the first one in this machine's apt sources
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${PI_VOICE_CACHE:-$HOME/.cache/pi-voice}
images=${PI_VOICE_IMAGES:-bookworm-amd64 bookworm-armhf bookworm-arm64}
mkdir -p "$cache"

log() { printf '\033[1m[harness]\033[0m %s\n' "$*"; }
die() { printf '[harness] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_host_packages() {
    # The harness itself, then what the tests build and run on the controller: KenLM from its sdist
    # (cmake, g++, boost, compression libraries) and a real Mosquitto broker.
    local wanted=(docker.io qemu-user-static debootstrap zstd python3-venv git make espeak-ng sox
        cmake g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev
        zlib1g-dev libbz2-dev liblzma-dev mosquitto)
    local missing=()
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "host packages present"
        return
    fi
    log "installing host packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_docker() {
    if docker info >/dev/null 2>&1; then
        log "docker engine answers"
        return
    fi
    # No default bridge, no iptables: containers use the host network only (loopback traffic).
    log "starting dockerd (bridge disabled, iptables off)"
    as_root sh -c 'nohup dockerd --bridge=none --iptables=false --ip-masq=false --userland-proxy=false \
        >/var/log/pi-voice-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    tail -n 20 /var/log/pi-voice-dockerd.log >&2 || true
    die "dockerd did not start within 60 s (log: /var/log/pi-voice-dockerd.log)"
}

raise_inotify_limits() {
    # Many systemd containers need many inotify instances (the default 128 lasts for ~27).
    local cur
    cur=$(cat /proc/sys/fs/inotify/max_user_instances)
    if [ "$cur" -lt 8192 ]; then
        log "raising inotify limits"
        as_root sysctl -q -w fs.inotify.max_user_instances=8192 fs.inotify.max_user_watches=1048576
    fi
}

register_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc
    [ -e "$dir/register" ] || as_root mount -t binfmt_misc binfmt_misc "$dir"
    for arch in arm aarch64; do
        if [ -e "$dir/qemu-$arch" ]; then
            continue
        fi
        local conf=/usr/lib/binfmt.d/qemu-$arch.conf
        [ -r "$conf" ] || die "$conf is missing: is qemu-user-static installed?"
        log "registering qemu-$arch with binfmt_misc"
        as_root sh -c "cat '$conf' > '$dir/register'"
    done
}

# Run pip, hiding the machine pip config's notes about find-links directories that do not exist.
quiet_pip() {
    local out
    if ! out=$("$@" 2>&1); then
        grep -v "is ignored: it is neither a file nor a directory" <<<"$out" >&2
        return 1
    fi
    grep -v "is ignored: it is neither a file nor a directory" <<<"$out" || true
}

make_venv() {
    # The controller's tools, pinned in requirements.txt, plus what the on-device helpers' tests
    # import; the venv is cached by the pins' hash.
    local key venv
    local retrain=$repo/python/voice-appliance/requirements-retrain.txt
    key=$(cat "$repo/requirements.txt" "$retrain" | sha256sum | cut -c1-12)
    venv=$cache/venv-$key
    # The marker is written last, so an interrupted install is redone, never half-used.
    if [ ! -e "$venv/.complete" ]; then
        log "creating controller venv $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        quiet_pip "$venv/bin/pip" install -q --disable-pip-version-check --no-warn-script-location -r "$repo/requirements.txt"
        # The retrain pipeline's own pins (rhasspy-nlu declares pins that break on current Pythons).
        quiet_pip "$venv/bin/pip" install -q --disable-pip-version-check --no-warn-script-location --no-deps -r "$retrain"
        touch "$venv/.complete"
    else
        log "controller venv $venv is current"
    fi
    ln -sfn "$venv" "$repo/.venv"
}

build_images() {
    local spec
    for spec in $images; do
        "$here/build-image.sh" "${spec%-*}" "${spec##*-}"
    done
}

install_host_packages
start_docker
raise_inotify_limits
register_binfmt
make_venv
build_images
log "ready"
