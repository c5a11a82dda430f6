#!/usr/bin/env bash
# `make emulated`: every molecule scenario, in two lanes at once: the ARM Pis under qemu (arm64, whose converge
# is the demo's own script, then armhf) beside the amd64 ones (default, pull, the fleet). Each lane's lines carry
# its name; ports, container names and cache writes never collide between them. Each step ends with a line
# "timed: STEP exit RC after N s" (bench/ci.md). Fails if either lane fails, and then its last lines say which
# step failed and why, so the end of a CI log names the cause even when the other lane finished later.
set -u
cd "$(dirname "$0")/.."
# Molecule wraps its output at the terminal's width, 80 columns without one: a failure's line would be cut in pieces.
export COLUMNS=${COLUMNS:-200}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

lane() {  # NAME STEP...: the steps in order, stopping at the first that fails
    local name=$1 step rc=0
    shift
    for step in "$@"; do
        bash harness/timed.sh "$step" || { rc=$?; break; }
    done
    echo "$rc" >"$logs/$name.rc"
}

run_lane() {  # NAME STEP...
    lane "$@" 2>&1 | tee "$logs/$1.log" | sed -u "s/^/[$1] /"
}

# What explains a failed step: Ansible's failed tasks and recap, pytest's failures, molecule's errors.
why() {  # LOG
    sed -e 's/\x1b\[[0-9;]*m//g' "$1" \
        | grep -E 'fatal: \[|FAILED|failed=[1-9]|unreachable=[1-9]|^E  |ERROR|timed: ' \
        | grep -vE 'timed: \S+ exit 0 ' | tail -n 14 | cut -c1-400
}

run_lane arm molecule-arm64 molecule-armhf &
run_lane amd64 molecule-default molecule-pull molecule-fleet &
wait

status=0
summary=""
for name in arm amd64; do
    rc=$(cat "$logs/$name.rc" 2>/dev/null || echo 1)
    summary="$summary${summary:+, }$name exit $rc"
    [ "$rc" = 0 ] && continue
    status=1
    echo "== the $name lane failed; its failure lines, last ones last:"
    why "$logs/$name.log" | sed "s/^/[$name] /"
done
echo "lanes: $summary"
exit "$status"
