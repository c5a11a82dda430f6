#!/usr/bin/env bash
# Build a local Docker image that stands in for a Raspberry Pi: Debian minbase + systemd as PID 1
# + python3 + sudo, for one release and architecture (armhf runs under qemu-user via binfmt_misc).
#
#   harness/build-image.sh RELEASE ARCH        e.g. bookworm armhf
#
# The root filesystem is made with debootstrap and cached outside the clone as a zstd tarball,
# keyed by a hash of this recipe (this file + release + arch); the image is tagged
# pi-voice/debian:RELEASE-ARCH and labelled with that key, so an unchanged recipe is never rebuilt.
set -euo pipefail

release=${1:?usage: build-image.sh RELEASE ARCH}
arch=${2:?usage: build-image.sh RELEASE ARCH}
case "$release" in bullseye|bookworm|trixie) ;; *) echo "unsupported release '$release' (bullseye, bookworm, trixie)" >&2; exit 2 ;; esac
case "$arch" in amd64|armhf|arm64) ;; *) echo "unsupported arch '$arch' (amd64, armhf, arm64)" >&2; exit 2 ;; esac

cache=${PI_VOICE_CACHE:-$HOME/.cache/pi-voice}/images
mkdir -p "$cache"
key=$( { cat "$0"; echo "$release $arch"; } | sha256sum | cut -c1-16)
tag=pi-voice/debian:$release-$arch
tarball=$cache/debian-$release-$arch-$key.tar.zst

log() { printf '\033[1m[image %s]\033[0m %s\n' "$release-$arch" "$*"; }

if [ "$(docker image inspect -f '{{ index .Config.Labels "pi-voice.recipe" }}' "$tag" 2>/dev/null)" = "$key" ]; then
    log "image $tag is current ($key)"
    exit 0
fi

mirror=${DEBIAN_MIRROR:-$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | head -n1 | awk '{print $2}' || true)}
[ -n "$mirror" ] || { echo "no Debian mirror found in apt sources; set DEBIAN_MIRROR" >&2; exit 1; }

if [ ! -s "$tarball" ]; then
    root=$(mktemp -d "$cache/rootfs-$release-$arch.XXXXXX")
    # An interrupted debootstrap leaves /proc, /sys and /dev/pts mounted in the root: unmount
    # everything below it before deleting, never rm -rf through a live /proc.
    cleanup() {
        { grep -F " $root/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
        rm -rf --one-file-system "$root" "$root.log"
    }
    trap cleanup EXIT
    log "debootstrap from $mirror (takes a few minutes, longer for ARM)"
    debootstrap --arch="$arch" --variant=minbase \
        --include=python3,python3-apt,systemd,systemd-sysv,dbus,sudo,ca-certificates,procps \
        "$release" "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
    rm -f "$root.log"

    # Units that touch the host, spam the journal, or cannot work in a container.
    for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
        systemd-udev-trigger.service systemd-udev-settle.service getty.target console-getty.service \
        systemd-timesyncd.service systemd-networkd.service systemd-networkd.socket \
        systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
        proc-sys-fs-binfmt_misc.mount systemd-modules-load.service systemd-remount-fs.service \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount \
        apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
        systemd-firstboot.service systemd-hwdb-update.service; do
        ln -sfn /dev/null "$root/etc/systemd/system/$unit"
    done
    # qemu-user cannot pass systemd credentials nor private network namespaces ("Failed at step
    # CREDENTIALS", EIO): drop both from the stock units that use them.
    grep -lE '^(LoadCredential|ImportCredential|PrivateNetwork=yes)' "$root"/lib/systemd/system/*.service 2>/dev/null |
        while read -r file; do
            dropin=$root/etc/systemd/system/$(basename "$file").d
            mkdir -p "$dropin"
            conf=$dropin/pi-voice-container.conf
            echo "[Service]" >"$conf"
            if grep -q '^LoadCredential' "$file"; then echo "LoadCredential=" >>"$conf"; fi
            if grep -q '^ImportCredential' "$file"; then echo "ImportCredential=" >>"$conf"; fi
            if grep -q '^PrivateNetwork=yes' "$file"; then echo "PrivateNetwork=no" >>"$conf"; fi
        done

    : >"$root/etc/machine-id"
    rm -f "$root/etc/hostname" "$root"/var/cache/apt/archives/*.deb
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/lib/apt/periodic/update-success-stamp
    # An empty, old package list: the first apt task with cache_valid_time must fetch a fresh one.
    touch -d @0 "$root/var/lib/apt/lists"
    log "packing $(basename "$tarball")"
    tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -o "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    cleanup
    trap - EXIT
fi

# docker import cannot set STOPSIGNAL: containers are started with --stop-signal SIGRTMIN+3 for
# amd64 and SIGRTMIN+5 for ARM (qemu-user shifts real-time signals by two; molecule.yml, demo.sh).
log "importing $tag"
zstd -q -d -c "$tarball" | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    --change "LABEL pi-voice.recipe=$key pi-voice.arch=$arch pi-voice.release=$release" \
    - "$tag" >/dev/null
log "image $tag ready"
