#!/bin/sh
# One registrar benchmark session (about 35 minutes), run from the repository root:
#     sh bench/registrar/run_session.sh
# 1. digest REGISTER/s: sipedge and Kamailio ladders interleaved, $PASSES passes (a ladder
#    stops after 2 FAILs in a row), then $PASSES more interleaved rounds at both knees;
# 2. sipedge variants at fixed rates: under py-spy, under bench/gc_probe.py (GC pauses), with
#    the [security] checks on, with registrar.persist = true;
# 3. 100,000 bindings into a fresh sipedge and a fresh Kamailio: memory per binding, 300
#    calls/s for 10 s to random registered AORs, a traced check of where 200 calls went; and
#    sipedge filled at 500/s instead of 2000/s (fewer REGISTER transactions alive at once).
# Each step waits (up to 5 min) for the 1-min load average to drop under $QUIET, so that
# other users of the machine disturb fewer runs. Lines go to $OUT; tables at the end.
set -eu
PY=${PY:-.venv/bin/python}
DIR=${DIR:-/tmp/sipedge-bench/registrar}
OUT=${OUT:-$DIR/session-$(date +%Y%m%d-%H%M).txt}
DUR=${DUR:-15}
PASSES=${PASSES:-3}
QUIET=${QUIET:-1.5}
PROF=${PROF:-$DIR/profile}
mkdir -p "$DIR"
quiet() {
  i=0
  while [ $i -lt 60 ] && ! awk -v q="$QUIET" '{ exit !($1 < q) }' /proc/loadavg; do
    sleep 5; i=$((i + 1))
  done
}
note() { echo "# $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg): $*" | tee -a "$OUT" >&2; }
rate() { quiet; note "reg_rate $*"; "$PY" bench/registrar/reg_rate.py --duration "$DUR" "$@" | tee -a "$OUT"; }
scale() { quiet; note "reg_scale $*"; "$PY" bench/registrar/reg_scale.py "$@" | tee -a "$OUT"; }

for pass in $(seq 1 "$PASSES"); do
  rate --peer sipedge --rates "1000 1500 2000 2500" || true
  rate --peer kamailio --rates "8000 10000 12000 14000" || true
done
for pass in $(seq 1 "$PASSES"); do
  rate --peer sipedge --rates "1500 2000" --stop-after 9 || true
  rate --peer kamailio --rates "10000 12000" --stop-after 9 || true
done
rate --peer sipedge --tag sipedge+py-spy --profile "$PROF" --rates 1000
rate --peer sipedge --tag sipedge+gcprobe --gc-probe --rates "1000 1500 2000" --stop-after 9
rate --peer sipedge --tag sipedge+security --security --rates "1000 1500" --stop-after 9
rate --peer sipedge --tag sipedge+persist --persist --rates "1000 1500" --stop-after 9
scale --peer sipedge
scale --peer kamailio
scale --peer sipedge --tag sipedge-fill500 --reg-rate 500 --call-rate 0 --verify-calls 0

grep '^RESULT' "$OUT" | grep 'scen=reg-auth' | "$PY" bench/summarize.py
grep -E '^(GC|MEMORY|OBJECTS|VERIFY)' "$OUT"
grep -E '^RESULT' "$OUT" | grep -E 'scen=(register|call-lookup)'
"$PY" bench/registrar/reg_profile.py "$PROF/reg-1000-1.txt"
echo "raw lines: $OUT" >&2
