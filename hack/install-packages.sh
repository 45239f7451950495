#!/usr/bin/env bash
# Installs the Debian packages the tests run, in one apt-get call for whatever
# is missing: MariaDB and beanstalkd (unless MYSQL_DSN / BEANSTALKD_ADDR name
# running servers) and Chromium for the widget's browser tests. As root on
# Debian/Ubuntu it installs them; elsewhere it says what to install and fails.
set -euo pipefail

missing=()
need() { # need PACKAGE BINARY...: PACKAGE is missing when any BINARY is
	local pkg=$1 bin
	shift
	for bin in "$@"; do
		if ! command -v "$bin" >/dev/null && [[ ! -x /usr/sbin/$bin && ! -x /sbin/$bin ]]; then
			missing+=("$pkg")
			return
		fi
	done
}
[[ -n ${MYSQL_DSN:-} ]] || need mariadb-server mariadbd mariadb-install-db
[[ -n ${BEANSTALKD_ADDR:-} ]] || need beanstalkd beanstalkd
need chromium chromium

[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 || ! -f /etc/debian_version ]]; then
	echo "install-packages: missing ${missing[*]}: install them (Debian/Ubuntu: apt-get install ${missing[*]})," >&2
	echo "or set MYSQL_DSN / BEANSTALKD_ADDR to running servers" >&2
	exit 1
fi
echo "install-packages: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Post-install scripts may start system-wide daemons the tests never use.
for svc in mariadb beanstalkd; do
	service "$svc" stop >/dev/null 2>&1 || true
done
