#!/usr/bin/env bash
# Cross-check of the load harness with wrk as the load generator (BENCHMARKS.md,
# "Cross-check with wrk"). Needs wrk (apt-get install wrk) and 2 CPUs.
#
#   benches/wrk/cross_check.sh [SECS] [ROUNDS] [scenario...]
#
# Starts the load harness's server (pinned to CPU 0, the same apps and tokens), then
# for each round runs `wrk -t1 -c64` pinned to CPU 1: a 2 s warm-up per scenario, then
# SECS slices of 1 s, each slice running every scenario in turn. Prints each
# scenario's req/s, the server's CPU per request and its ratio to bare in the same
# round; at the end, the median ratio of each scenario over the rounds.
# Defaults: 10 slices, 3 rounds, all scenarios.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=${1:-10}
ROUNDS=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
SCENARIOS=("$@")
if [ ${#SCENARIOS[@]} -eq 0 ]; then
  SCENARIOS=(bare repeated repeated_outer fresh rbac rbac_handler rbac_extractor jsonwebtoken aws_lc_direct aws_lc_cached extension_only)
fi
[ "${SCENARIOS[0]}" = bare ] || SCENARIOS=(bare "${SCENARIOS[@]}")
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }

cargo build --release --example load_harness
BIN=target/release/examples/load_harness
WORK=$(mktemp -d)
mkfifo "$WORK/stdin"
# The server exits when its stdin closes: hold it open until this script ends.
sleep 100000 > "$WORK/stdin" &
HOLD=$!
"$BIN" serve 0 4096 3600 < "$WORK/stdin" > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER=$!
trap 'kill $HOLD $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
until grep -q '^TOKENS' "$WORK/server.out" 2>/dev/null; do
  kill -0 $SERVER 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 0.5
done
sleep 1
tail -n +3 "$WORK/server.out" > "$WORK/tokens.txt"
READY=$(head -1 "$WORK/server.out")
port() { tr ' ' '\n' <<< "$READY" | sed -n "s/^$1=//p"; }
read -r JWT TOKEN < "$WORK/tokens.txt"
COOKIE="_ga=GA1.1.1843012745.1767225600; _ga_Q7X3ZP1K2D=GS1.1.1767225600.3.1.1767229200.0.0.0; theme=dark; stytch_session=$TOKEN; stytch_session_jwt=$JWT; csrftoken=9f2c1e7a4b8d6f3e0a5c7b9d1e3f5a7c"
server_cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
TICK=$(getconf CLK_TCK)

echo "wrk cross-check: ${SECS} x 1 s slices per scenario and round, ${ROUNDS} rounds; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk_args() {
  case $1 in
    fresh|jsonwebtoken|aws_lc_direct) ARGS=(-s benches/wrk/fresh.lua) ; TAIL=(-- "$WORK/tokens.txt") ;;
    *) ARGS=(-H "Cookie: $COOKIE" -H "User-Agent: wrk" -H "Accept: */*") ; TAIL=() ;;
  esac
  URL="http://127.0.0.1:$(port "$1")/"
}
for round in $(seq 1 "$ROUNDS"); do
  declare -A REQS=() SECONDS_RUN=() TICKS=() BAD=()
  for s in "${SCENARIOS[@]}"; do
    wrk_args "$s"
    taskset -c 1 wrk -t1 -c64 -d2s "${ARGS[@]}" "$URL" "${TAIL[@]}" > /dev/null
    REQS[$s]=0; SECONDS_RUN[$s]=0; TICKS[$s]=0; BAD[$s]=0
  done
  # Slices taken in turn, as the load harness does: the VM's speed drifts over tens
  # of seconds, and the drift must not fall on one scenario.
  for slice in $(seq 1 "$SECS"); do
    for s in "${SCENARIOS[@]}"; do
      wrk_args "$s"
      c0=$(server_cpu_ticks)
      out=$(taskset -c 1 wrk -t1 -c64 -d1s "${ARGS[@]}" "$URL" "${TAIL[@]}")
      c1=$(server_cpu_ticks)
      read -r n secs < <(awk '/requests in/ {sub(/s,$/, "", $4); print $1, $4}' <<< "$out")
      bad=$(awk '/Non-2xx/ {print $4}' <<< "$out")
      REQS[$s]=$(( ${REQS[$s]} + n ))
      SECONDS_RUN[$s]=$(awk -v a="${SECONDS_RUN[$s]}" -v b="$secs" 'BEGIN {print a + b}')
      TICKS[$s]=$(( ${TICKS[$s]} + c1 - c0 ))
      BAD[$s]=$(( ${BAD[$s]} + ${bad:-0} ))
    done
  done
  for s in "${SCENARIOS[@]}"; do
    rps=$(awk -v n="${REQS[$s]}" -v t="${SECONDS_RUN[$s]}" 'BEGIN {printf "%.0f", n / t}')
    us=$(awk -v k="${TICKS[$s]}" -v n="${REQS[$s]}" -v t="$TICK" 'BEGIN {printf "%.1f", k / t * 1e6 / n}')
    [ "$s" = bare ] && bare_rps=$rps
    ratio=$(awk -v r="$rps" -v b="$bare_rps" 'BEGIN {printf "%.3f", r / b}')
    printf 'round %d %-14s req/s %9s  srv %5s us/req  ratio %s  non-2xx %s\n' \
      "$round" "$s" "$rps" "$us" "$ratio" "${BAD[$s]}"
    echo "$s $ratio" >> "$WORK/ratios"
  done
done
echo "median ratio to bare over ${ROUNDS} rounds:"
for s in "${SCENARIOS[@]}"; do
  [ "$s" = bare ] && continue
  awk -v s="$s" '$1 == s {print $2}' "$WORK/ratios" | sort -n |
    awk -v s="$s" '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "  %-14s %.2fx\n", s, m}'
done
