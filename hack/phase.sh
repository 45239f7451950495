#!/usr/bin/env bash
# Runs a command as a named phase and prints its wall time, in a line that
# hack/cold-check.sh collects:   hack/phase.sh NAME COMMAND [ARGS...]
set -uo pipefail
name=$1
shift
echo "==> phase: $name" >&2
start=$(date +%s)
"$@"
rc=$?
echo "<== phase: $name: $(($(date +%s) - start))s (exit $rc)" >&2
exit $rc
