#!/usr/bin/env bash
# Prepare this machine to test the appliance: host packages, a Docker engine, ARM emulation,
# the controller's Python virtualenv and the images that stand in for Raspberry Pis.
#
# Idempotent: every step checks before it acts, so a second run takes seconds.
# Used by `make demo`, `make test` and `.ci/run`.
#
# Knobs (environment):
#   PI_VOICE_CACHE   cache outside the clone (images, venvs, downloads); default ~/.cache/pi-voice
#   PI_VOICE_IMAGES  images to build (default "bookworm-amd64 bookworm-armhf trixie-arm64"; also e.g. bullseye-armhf, bookworm-arm64);
#                    the missing ones are built side by side, each logging to $PI_VOICE_CACHE/images/build-RELEASE-ARCH.log
#   DEBIAN_MIRROR    Debian mirror for debootstrap; default: the first one in this machine's apt sources
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${PI_VOICE_CACHE:-$HOME/.cache/pi-voice}
images=${PI_VOICE_IMAGES:-bookworm-amd64 bookworm-armhf trixie-arm64}
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
    # In a session of its own: a Ctrl-C in the terminal (or the end of the shell) that started it does not stop it.
    as_root sh -c 'setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false --userland-proxy=false \
        </dev/null >/var/log/pi-voice-dockerd.log 2>&1 &'
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
    # 32-bit ARM: the host's qemu-user-static.
    if [ ! -e "$dir/qemu-arm" ]; then
        local conf=/usr/lib/binfmt.d/qemu-arm.conf
        [ -r "$conf" ] || die "$conf is missing: is qemu-user-static installed?"
        log "registering qemu-arm with binfmt_misc"
        as_root sh -c "cat '$conf' > '$dir/register'"
    fi
    register_qemu_aarch64
}

# 64-bit ARM needs a newer emulator than bookworm's qemu-user 7.2: trixie's systemd 257 cannot run
# as PID 1 under it (every unit: "Failed to spawn executor"), and under trixie's qemu 10 no unit with
# a mount namespace starts (PrivateTmp, ProtectSystem: "Failed to set up mount namespacing: Invalid
# argument"). qemu-user 11 from trixie-backports runs both. It is fetched with apt from this
# machine's own Debian mirror (signature-checked like any package), unpacked into the cache (the
# host's packages stay as they are) and registered under a name of its own; the system's aarch64
# entry is switched off so that which emulator runs never depends on registration order.
QEMU_SUITE=trixie-backports
QEMU_MIN_MAJOR=11
register_qemu_aarch64() {
    local dir=/proc/sys/fs/binfmt_misc name=pi-voice-aarch64 qemu
    qemu=$(fetch_qemu)
    if ! grep -qxF "interpreter $qemu" "$dir/$name" 2>/dev/null; then
        [ -e "$dir/$name" ] && as_root sh -c "echo -1 > '$dir/$name'"
        log "registering $qemu for aarch64 with binfmt_misc"
        # The standard aarch64 ELF magic and mask; P: keep argv[0], O: open the binary for the
        # emulator, C: credentials of the binary (setuid sudo inside the Pi), F: the emulator file
        # is opened now, so it works inside containers that do not have it.
        local magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
        local mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
        as_root sh -c "printf '%s' ':$name:M::$magic:$mask:$qemu:POCF' > '$dir/register'"
    fi
    local other
    for other in "$dir"/*; do
        case "$(basename "$other")" in "$name"|register|status) continue ;; esac
        if grep -q '^magic 7f454c460201010000000000000000000200b700' "$other" 2>/dev/null && grep -qx enabled "$other"; then
            log "switching off the other aarch64 emulator $(basename "$other")"
            as_root sh -c "echo 0 > '$other'"
        fi
    done
}

# The major version of a qemu binary (0 when it does not run).
qemu_major() {
    "$1" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1 | grep . || echo 0
}

# Prints the path of a cached qemu-aarch64 of at least QEMU_MIN_MAJOR, fetching it first if needed.
fetch_qemu() {
    local root=$cache/qemu found
    found=$(ls -d "$root"/*/usr/bin/qemu-aarch64 2>/dev/null | sort -V | tail -n1 || true)
    if [ -n "$found" ] && [ "$(qemu_major "$found")" -ge "$QEMU_MIN_MAJOR" ]; then
        echo "$found"
        return
    fi
    local mirror apt=$cache/apt-$QEMU_SUITE
    mirror=${DEBIAN_MIRROR:-$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
        | head -n1 | awk '{print $2}' || true)}
    [ -n "$mirror" ] || die "no Debian mirror found in apt sources; set DEBIAN_MIRROR"
    log "fetching qemu-user from $QEMU_SUITE (64-bit ARM emulation that runs trixie's systemd)" >&2
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc" "$apt/deb"
    echo "deb $mirror $QEMU_SUITE main" >"$apt/etc/sources.list"
    local opts=(-q -o "Dir::Etc::SourceList=$apt/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    as_root apt-get "${opts[@]}" update >/dev/null || die "apt could not read $QEMU_SUITE from $mirror"
    rm -f "$apt"/deb/*.deb
    (cd "$apt/deb" && as_root apt-get "${opts[@]}" download "qemu-user/$QEMU_SUITE" >/dev/null) \
        || die "apt could not download qemu-user from $QEMU_SUITE ($mirror)"
    local deb version
    deb=$(ls "$apt"/deb/qemu-user_*.deb)
    version=$(dpkg-deb -f "$deb" Version | tr ':~+' '___')
    rm -rf "$root/$version.tmp" && mkdir -p "$root/$version.tmp"
    dpkg-deb -x "$deb" "$root/$version.tmp"
    rm -rf "${root:?}/$version" && mv "$root/$version.tmp" "$root/$version" && rm -f "$deb"
    found=$root/$version/usr/bin/qemu-aarch64
    [ "$(qemu_major "$found")" -ge "$QEMU_MIN_MAJOR" ] \
        || die "$QEMU_SUITE's qemu-user is older than $QEMU_MIN_MAJOR: $("$found" --version | head -n1)"
    echo "$found"
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

# m:ss of a number of seconds.
mmss() { printf '%d:%02d' $(( $1 / 60 )) $(( $1 % 60 )); }

# build-image.sh's own check, here so that a current image costs no job and no log: the image
# pi-voice/debian:RELEASE-ARCH is labelled with its recipe's key, a hash of build-image.sh, release
# and arch. recipe_key SPEC prints the key; image_current SPEC succeeds when the image carries it.
recipe_key() { { cat "$here/build-image.sh"; echo "${1%-*} ${1##*-}"; } | sha256sum | cut -c1-16; }
image_current() {
    [ "$(docker image inspect -f '{{ index .Config.Labels "pi-voice.recipe" }}' "pi-voice/debian:$1" 2>/dev/null)" \
        = "$(recipe_key "$1")" ]
}

# Stops the builds whose process groups lead with these PIDs, waits for them, gives up.
stop_builds() {
    local pid
    for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    wait
    die "interrupted: image builds stopped"
}

# The images that are not current are built side by side, each build-image.sh with its output in
# its own log, images/build-RELEASE-ARCH.log in the cache. One after another, cold, the three
# defaults took 6.3 min (bookworm amd64 1:45, bookworm armhf 2:16, trixie arm64 3:11); side by side
# on 2 CPUs, bullseye amd64 and arm64 took 2:33 together (1:04 and 2:33 each).
# Builds of different images share no path: each debootstraps into its own mktemp root and packs
# its own tarball (named by release, arch and recipe key). Two runs of this script that want the
# same image take turns on a lock per image: the second then finds it current and builds nothing.
build_images() {
    local spec dir=$cache/images
    local -a todo=() pids=()
    local -A seen=()
    for spec in $images; do
        [ -z "${seen[$spec]:-}" ] || continue
        seen[$spec]=1
        if image_current "$spec"; then
            log "image pi-voice/debian:$spec is current ($(recipe_key "$spec"))"
        else
            todo+=("$spec")
        fi
    done
    [ ${#todo[@]} -gt 0 ] || return 0

    mkdir -p "$dir"
    if [ ${#todo[@]} -eq 1 ]; then
        log "building ${todo[0]} (log: $dir/build-${todo[0]}.log)"
    else
        log "building ${todo[*]} side by side (logs: $dir/build-RELEASE-ARCH.log)"
    fi
    local start=$SECONDS
    # Each build is a process group of its own (set -m), so that an interrupted setup stops every
    # build, debootstrap included; build-image.sh then unmounts and removes its unfinished root.
    # A build's subshell leaves its seconds (or "current") in build-SPEC.result for the report.
    trap 'stop_builds "${pids[@]}"' INT TERM
    set -m
    for spec in "${todo[@]}"; do
        (
            exec 9>"$dir/.build-$spec.lock"
            flock 9
            if image_current "$spec"; then
                echo current >"$dir/build-$spec.result"
                exit 0
            fi
            begin=$SECONDS rc=0
            "$here/build-image.sh" "${spec%-*}" "${spec##*-}" </dev/null >"$dir/build-$spec.log" 2>&1 || rc=$?
            echo $(( SECONDS - begin )) >"$dir/build-$spec.result"
            exit "$rc"
        ) &
        pids+=($!)
    done
    set +m

    local i rc result built=0 failed=()
    for i in "${!todo[@]}"; do
        rc=0
        wait "${pids[$i]}" || rc=$?
        spec=${todo[$i]}
        result=$(cat "$dir/build-$spec.result" 2>/dev/null || true)
        rm -f "$dir/build-$spec.result"
        if [ "$rc" -ne 0 ]; then
            failed+=("$spec")
        elif [ "$result" = current ]; then
            log "image pi-voice/debian:$spec is current (built meanwhile by another setup)"
        else
            log "image pi-voice/debian:$spec built in $(mmss "$result")"
            built=$(( built + 1 ))
        fi
    done
    trap - INT TERM
    if [ ${#failed[@]} -gt 0 ]; then
        local logs=""
        for spec in "${failed[@]}"; do
            printf '[harness] last lines of %s:\n' "$dir/build-$spec.log" >&2
            tail -n 40 "$dir/build-$spec.log" >&2
            logs+="${logs:+, }$spec ($dir/build-$spec.log)"
        done
        die "image build failed: $logs"
    fi
    [ "$built" -lt 2 ] || log "$built images built side by side in $(mmss $(( SECONDS - start )))"
}

# Sourced (tests/test_setup_images.py), the script only defines its functions.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
install_host_packages
start_docker
raise_inotify_limits
register_binfmt
make_venv
build_images
log "ready"
