#!/bin/sh
# One benchmark session (about 10-15 minutes), run from the repository root:
#     sh bench/run_session.sh
# SIPp-only ceiling, then Kamailio and sipedge ladders (2 runs per rate; a ladder stops after
# 2 FAILs in a row), a second interleaved pass near both knees, and a py-spy profile of
# sipedge at 500 calls/s. RESULT lines are appended to $OUT; the tables go to stdout.
set -eu
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/sipedge-bench/results-$(date +%Y%m%d-%H%M).txt}
DUR=${DUR:-15}
PROF=${PROF:-/tmp/sipedge-bench/profile}
mkdir -p "$(dirname "$OUT")"
run() {
  echo "# $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg): $*" >&2
  "$PY" bench/call_rate.py --duration "$DUR" "$@" | tee -a "$OUT"
}
run --peer direct --rates 2000
run --peer kamailio --rates "1000 1250 1500 2000" --repeat 2
run --peer sipedge --rates "300 500 650 750 1000 1250 1500 2000" --repeat 2
run --peer kamailio --rates "1000 1250" --stop-after 9
run --peer sipedge --rates "500 650" --stop-after 9
run --peer sipedge --tag sipedge+py-spy --profile "$PROF" --rates 500
"$PY" bench/summarize.py "$OUT"
"$PY" bench/profile_summary.py "$PROF/sipedge-500cps-1.txt" --top 20
echo "RESULT lines: $OUT" >&2
