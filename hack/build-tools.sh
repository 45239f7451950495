#!/usr/bin/env bash
# Builds the pinned tools of hack/tools/go.mod into a cache directory outside
# the repository and prints that directory as the last line:
#
#   hack/build-tools.sh [TOOL...]     (default: every tool below)
#   hack/build-tools.sh --dir         (the directory only; builds nothing)
#
# The directory's name carries a digest of hack/tools/go.sum, so a version bump
# builds into a fresh directory and an unchanged one is reused as it is. Tests
# never build a tool: `make test-tools` runs this first and hands the paths on.
set -euo pipefail
exec 3>&1 1>&2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
declare -A packages=(
	[controller-gen]=sigs.k8s.io/controller-tools/cmd/controller-gen
	[deadcode]=golang.org/x/tools/cmd/deadcode
	[golangci-lint]=github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	[helm]=helm.sh/helm/v3/cmd/helm
)

digest=$(sha256sum "$root/hack/tools/go.sum" | cut -c1-12)
dir=${XDG_CACHE_HOME:-$HOME/.cache}/kommo-unisender/tools/$digest
mkdir -p "$dir"

if [[ ${1:-} == --dir ]]; then # print the directory only, building nothing
	echo "$dir" >&3
	exit 0
fi
tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=("${!packages[@]}")

mkdir -p "$dir"
# One builder at a time per directory; a killed builder leaves only a .tmp.
exec 9>"$dir/.lock"
flock 9
rm -rf "$dir"/.*.tmp.*

# The missing tools are built by one `go build`, so the packages they share
# (golang.org/x/tools, k8s.io/apimachinery, …) compile once and the two cores
# stay busy while a large package or a link holds one of them.
missing=() pkgs=()
for tool in "${tools[@]}"; do
	pkg=${packages[$tool]:-}
	if [[ -z $pkg ]]; then
		echo "build-tools: unknown tool $tool (known: ${!packages[*]})" >&2
		exit 2
	fi
	[[ -x $dir/$tool ]] && continue
	missing+=("$tool")
	pkgs+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	start=$SECONDS
	tmp=$dir/.build.tmp.$$
	mkdir -p "$tmp"
	(cd "$root" && GOWORK=off go build -modfile=hack/tools/go.mod -o "$tmp/" "${pkgs[@]}")
	for tool in "${missing[@]}"; do
		mv -f "$tmp/$tool" "$dir/$tool"
	done
	rm -rf "$tmp"
	echo "build-tools: built ${missing[*]} in $((SECONDS - start))s" >&2
fi
echo "$dir" >&3
