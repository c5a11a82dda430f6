#!/usr/bin/env bash
# Runs one make target and says how long it took: CI's wall time per scenario (bench/ci.md reads these lines).
set -u
start=$(date +%s)
rc=0
"${MAKE:-make}" --no-print-directory "$1" || rc=$?
echo "timed: $1 exit $rc after $(( $(date +%s) - start )) s"
exit "$rc"
