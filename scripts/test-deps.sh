#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: promtool (Debian package
# "prometheus") checks the metrics exposition in spillwayprom's tests.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "== installing promtool (Debian package prometheus)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
