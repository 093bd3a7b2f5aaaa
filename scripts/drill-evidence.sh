#!/usr/bin/env bash
# Runs every `spillway drill` scenario against examples/gateway/spillway.yaml
# and keeps what docs/drills.md shows ("Evidence"). Per drill, in DIR:
#   NAME.json  the drill's --json report
#   NAME.txt   the command, then its verdict table (printed from that report
#              by the drill's own printer, scripts/drilltable)
#   NAME.png   its --html report rendered in headless Chromium
#
#   scripts/drill-evidence.sh [DIR]        # DIR: docs/drills by default
#
# The example's upstreams are served by examples/gateway/upstreams on the
# file's ports, which must be free. The drills run one after the other (each
# takes DRILL_DURATION plus a few seconds: about 14 minutes in all). A failed
# expectation is a finding, kept; a drill that cannot run stops the script.
# Environment: DRILL_RATE (50), DRILL_DURATION (100s), DRILL_ONLY (the names
# of the drills to run, e.g. "outage recovery"; all when empty).
# Needs /usr/bin/chromium (scripts/test-deps.sh) and jq; pngquant, when
# installed, makes the PNGs about three times smaller.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-docs/drills}
rate=${DRILL_RATE:-50}
duration=${DRILL_DURATION:-100s}
only=${DRILL_ONLY:-}
config=examples/gateway/spillway.yaml

work=$(mktemp -d)
up_pid=
cleanup() {
	if [ -n "$up_pid" ]; then
		kill "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$out"

echo "== building spillway, the upstreams, drilltable"
go build -o "$work/spillway" ./cmd/spillway
go build -o "$work/upstreams" ./examples/gateway/upstreams
go build -o "$work/drilltable" ./scripts/drilltable

"$work/upstreams" >"$work/upstreams.log" 2>&1 &
up_pid=$!
# It prints one line per service once every listener is bound.
for _ in $(seq 100); do
	[ "$(wc -l <"$work/upstreams.log")" -ge 5 ] && break
	kill -0 "$up_pid" 2>/dev/null || { cat "$work/upstreams.log" >&2; exit 1; }
	sleep 0.1
done
cat "$work/upstreams.log"

# render HTML PNG: a 1200 px wide screenshot of the whole report.
render() {
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--user-data-dir="$work/chromium" --window-size=1200,1850 \
		--screenshot="$2" "file://$(realpath "$1")" >/dev/null 2>&1
	if command -v pngquant >/dev/null; then
		pngquant --quality=60-90 --speed 1 --strip --force --output "$2" "$2"
	fi
}

# drill NAME ARGS...: one drill, its report kept as NAME.*.
drill() {
	local name=$1 rc=0
	shift
	if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then
		return
	fi
	local args=(drill -c "$config" "$@")
	echo "== $name: spillway ${args[*]}"
	"$work/spillway" "${args[@]}" --json --html "$work/$name.html" >"$work/$name.json" 2>"$work/$name.err" || rc=$?
	# Status 1 with a report is a failed expectation; anything else is a
	# drill that did not run.
	if [ "$rc" -gt 1 ] || ! jq -e .scenario "$work/$name.json" >/dev/null 2>&1; then
		tail -c 2000 "$work/$name.err" >&2
		exit 1
	fi
	jq -c . "$work/$name.json" >"$out/$name.json"
	{
		printf '$ spillway'
		for a in "${args[@]}"; do
			# Quoted as one would type it: 'availability>=99.5%'.
			if [[ $a =~ ^[A-Za-z0-9_./:=-]+$ ]]; then printf ' %s' "$a"; else printf " '%s'" "$a"; fi
		done
		printf ' --json --html %s.html\n' "$name"
		"$work/drilltable" <"$out/$name.json"
	} >"$out/$name.txt"
	cat "$out/$name.txt"
	render "$work/$name.html" "$out/$name.png"
}

# The expectations follow the example's settings: the catalog's breaker
# judges from 20 calls and opens for 30 s (then 5 probes), its replica and
# stale cache answer while it is open, an attempt times out after 2 s and a
# request after 5 s, a call over 1 s is slow.
recovered='time_to_recover<=35s'
load=(--rate "$rate" --duration "$duration")
drill outage --scenario outage --upstream catalog "${load[@]}" \
	--expect 'availability>=99.5%' --expect 'p99<=1s' --expect 'time_to_open<=5s' \
	--expect 'amplification<=1.5' --expect "$recovered"
drill blackhole --scenario blackhole --upstream catalog "${load[@]}" \
	--expect 'availability>=99.5%' --expect 'max<=6s' --expect 'time_to_open<=10s' \
	--expect 'amplification<=1.5' --expect "$recovered"
drill latency --scenario latency --upstream catalog "${load[@]}" --latency 1500ms \
	--expect 'availability>=99.5%' --expect 'time_to_open<=5s' \
	--expect 'amplification<=1.2' --expect "$recovered"
drill errors --scenario errors --upstream catalog "${load[@]}" \
	--expect 'availability>=99.5%' --expect 'time_to_open<=5s' \
	--expect 'amplification<=1.5' --expect "$recovered"
drill flapping --scenario flapping --upstream catalog "${load[@]}" \
	--expect 'availability>=99.5%' --expect 'amplification<=1.5' --expect "$recovered"
drill recovery --scenario recovery --upstream catalog "${load[@]}" \
	--expect 'availability>=99.5%' --expect 'time_to_open<=5s' --expect "$recovered"
# A fault longer than open_for: the failed probe at 30 s opens the breaker
# again for twice as long (60 s: the breaker's open backoff), which outlasts
# the 30 s recovery phase of a 100 s drill. At 120 s: a 60 s fault, 36 s after.
drill outage-120s --scenario outage --upstream catalog --rate "$rate" --duration 120s \
	--expect 'availability>=99.5%' --expect 'p99<=1s' --expect 'time_to_open<=5s' \
	--expect 'amplification<=1.5' --expect "$recovered"
drill orders-outage --scenario outage --upstream orders "${load[@]}" \
	--expect 'availability>=99.9%' --expect 'queue_backlog==0'
echo "== done: $out"
