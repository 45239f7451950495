#!/usr/bin/env bash
# Runs `go test` over PACKAGES, with the race detector on every package except
# those in RACE_FREE (space-separated patterns): packages whose tests start no
# goroutines of their own give the detector nothing to watch, and compiling
# and linking them with -race only costs time.
#
#   RACE_FREE="./api/..." hack/go-test.sh [GO TEST FLAGS] -- PACKAGES...
set -euo pipefail
flags=()
while [[ $# -gt 0 && $1 != -- ]]; do
	flags+=("$1")
	shift
done
shift || true
[[ $# -gt 0 ]] || set -- ./...

all=$(go list "$@")
free=$(if [[ -n ${RACE_FREE:-} ]]; then go list ${RACE_FREE}; fi)
race=$(comm -23 <(sort <<<"$all") <(sort <<<"$free") | sed '/^$/d')
plain=$(comm -12 <(sort <<<"$all") <(sort <<<"$free") | sed '/^$/d')

rc=0
if [[ -n $race ]]; then
	# shellcheck disable=SC2086 # one argument per package
	go test -race "${flags[@]}" $race || rc=$?
fi
if [[ -n $plain ]]; then
	# shellcheck disable=SC2086
	go test "${flags[@]}" $plain || rc=$?
fi
exit $rc
