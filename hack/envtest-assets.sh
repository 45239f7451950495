#!/usr/bin/env bash
# Builds the envtest binaries (kube-apiserver, etcd, kubectl) from Go source into
# a cache outside the repository and prints that directory as the last line:
#
#   export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
#
# Versions come from the go.mod files of hack/envtest (Kubernetes) and
# hack/envtest/etcd (etcd), and are part of the cache directory's name, so a
# version bump builds into a fresh directory. A binary already in the cache is
# reused; the first build takes several minutes. Build output goes to stderr.
set -euo pipefail

# Keep stdout for the final path only; everything else goes to stderr.
exec 3>&1 1>&2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kube_mod=$root/hack/envtest
etcd_mod=$root/hack/envtest/etcd

# module_version FILE MODULE prints the version of MODULE required in go.mod FILE.
module_version() {
	local version
	# Matches both "require m v" and a "m v" line inside a require block.
	version=$(awk -v m="$2" '{ i = ($1 == "require") ? 2 : 1 }
		$i == m && $(i + 1) ~ /^v/ { print $(i + 1); exit }' "$1")
	if [[ -z $version ]]; then
		echo "envtest-assets: $2 is not required in $1" >&2
		exit 1
	fi
	printf '%s\n' "$version"
}

kube_version=$(module_version "$kube_mod/go.mod" k8s.io/kubernetes)       # v1.37.2
etcd_version=$(module_version "$etcd_mod/go.mod" go.etcd.io/etcd/server/v3) # v3.6.x
kube_major_minor=${kube_version#v}
kube_major=${kube_major_minor%%.*}
kube_minor=${kube_major_minor#*.}
kube_minor=${kube_minor%%.*}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/kommo-unisender/envtest
dir=$cache/k8s-${kube_version#v}-etcd-${etcd_version#v}
mkdir -p "$dir"

# Without version stamps the binaries report v0.0.0, which breaks discovery,
# kubectl's version-skew check and anything comparing server versions. These
# are the variables Kubernetes' own build (hack/lib/version.sh) sets.
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X $pkg.gitVersion=$kube_version"
	kube_ldflags+=" -X $pkg.gitMajor=$kube_major -X $pkg.gitMinor=$kube_minor"
	kube_ldflags+=" -X $pkg.gitTreeState=clean"
done

# Static, reproducible binaries, independent of any go.work or C toolchain.
export CGO_ENABLED=0 GOWORK=off

tmp_files=()
cleanup() { rm -f "${tmp_files[@]}"; }
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap removes partial output.
trap 'exit 130' INT
trap 'exit 143' TERM

# build NAME MODULE_DIR PACKAGE LDFLAGS builds NAME into the cache unless it is
# there. It builds under a temporary name and renames it into place, so an
# interrupted build never leaves a half-written binary that looks finished.
build() {
	local name=$1 module_dir=$2 pkg=$3 ldflags=$4
	local target=$dir/$name
	if [[ -x $target ]]; then
		return
	fi
	local tmp=$dir/.$name.tmp.$$
	tmp_files+=("$tmp")
	echo "envtest-assets: building $name ($pkg) into $dir" >&2
	local start=$SECONDS
	# -buildvcs=false: the etcd main package sits in this git checkout, and
	# stamping it would fail where git is missing or distrusts the clone.
	(cd "$module_dir" && go build -trimpath -buildvcs=false -ldflags="$ldflags" -o "$tmp" "$pkg")
	mv -f "$tmp" "$target"
	echo "envtest-assets: built $name in $((SECONDS - start))s" >&2
}

# One builder at a time per cache directory: a second caller waits and then
# finds the binaries in place instead of compiling them again.
if command -v flock >/dev/null; then
	exec 9>"$dir/.lock"
	flock 9
	# Holding the lock, any temporary binary left here was abandoned by a
	# builder that was killed outright (kill -9).
	rm -f "$dir"/.*.tmp.*
fi

build kube-apiserver "$kube_mod" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kubectl "$kube_mod" k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
build etcd "$etcd_mod" github.com/kommo-unisender/kommo-unisender/hack/envtest/etcd "-s -w"

echo "$dir" >&3
