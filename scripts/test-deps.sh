#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, as Debian packages:
#   - promtool (package "prometheus") checks the metrics exposition in
#     spillwayprom's tests and the rules of deploy/prometheus (make rules);
#     the same package's prometheus server runs e2e's alerts test;
#   - prometheus-alertmanager receives the alerts of e2e's alerts test;
#   - chromium (/usr/bin/chromium) runs e2e's dashboard test in a real
#     headless browser, driven by chromedp.
# Idempotent: installs only what is missing, nothing when all is there.
set -euo pipefail

pkgs=()
{ command -v promtool >/dev/null 2>&1 && [ -x /usr/bin/prometheus ]; } || pkgs+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || pkgs+=(prometheus-alertmanager)
[ -x /usr/bin/chromium ] || pkgs+=(chromium)
if [ "${#pkgs[@]}" -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
echo "== installing ${pkgs[*]} (Debian packages)"
start=$(date +%s)
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
command -v promtool >/dev/null
[ -x /usr/bin/prometheus ]
[ -x /usr/bin/prometheus-alertmanager ]
[ -x /usr/bin/chromium ]
echo "== installed in $(($(date +%s) - start))s"
