#!/usr/bin/env bash
# Runs CI as a new user's fresh machine would: clones HEAD into a temporary
# directory and runs `bash .ci/run` there with empty GOCACHE, GOMODCACHE,
# XDG_CACHE_HOME (envtest assets, pinned tools) and npm cache of its own, then
# removes them all. Prints the wall time of each phase and the total.
#
#   hack/cold-check.sh [--purge-packages] [COMMIT]
#
# --purge-packages first removes the Debian packages the tests install
# (mariadb-server, beanstalkd, chromium), so that the apt phase is timed too.
# COMMIT (default HEAD) is the commit checked out in the clone.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ ${1:-} == --purge-packages ]]; then
	shift
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq mariadb-server 'mariadb-server-*' beanstalkd chromium >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq >/dev/null
fi
commit=$(git -C "$root" rev-parse "${1:-HEAD}")

work=$(mktemp -d /tmp/kommo-unisender-cold-XXXXXX)
cleanup() {
	chmod -R u+w "$work" 2>/dev/null || true # the module cache is read-only
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

git clone -q "$root" "$work/src"
git -C "$work/src" checkout -q "$commit"
git -C "$work/src" log -1 --format='cold-check: commit %h %s'
mkdir -p "$work/gocache" "$work/gomodcache" "$work/xdg" "$work/npm"
log=$work/ci.log
start=$(date +%s)
set +e
(
	cd "$work/src"
	# Nothing of this machine's caches or of the caller's services is used.
	unset MYSQL_DSN BEANSTALKD_ADDR KUBEBUILDER_ASSETS GOFLAGS
	export GOCACHE=$work/gocache GOMODCACHE=$work/gomodcache XDG_CACHE_HOME=$work/xdg \
		npm_config_cache=$work/npm
	bash .ci/run
) 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
total=$(($(date +%s) - start))

echo
echo "cold-check: phases (wall time)"
grep -a -e '^<== phase: ' -e '^build-tools: built' -e '^envtest-assets: built' "$log" |
	sed -e 's/^<== phase: /  /' -e 's/^\(build-tools\|envtest-assets\): /    /'
printf '  total: %dm%02ds (exit %d)\n' $((total / 60)) $((total % 60)) "$rc"
exit "$rc"
