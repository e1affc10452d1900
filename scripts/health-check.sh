#!/usr/bin/env bash
# Checks one filtering node end to end by what happens during the check: reads the Wallarm status counters, sends
# the test attack through NGINX (as Wallarm's guide does), and reads them again. Healthy means the attack was
# counted (requests and attacks grew) and tnt_errors (failed writes to wstore) did not grow. Errors counted before
# this check (an earlier configuration) do not fail it; a status that never saw the attack is not healthy.
# With --wallarm-mode off, Wallarm analyses nothing, so only "the status answers and tnt_errors does not grow" is
# checked, and the output says so.
# With --ready-url (Wallarm 7.x: wd's http://127.0.0.1:9446/ready, 200 once initialised, 503 while starting,
# degraded or failed; docs/latest/admin-en/nginx-node-metrics.md) the node must first be ready. The status URL is
# the same in 6.x and 7.x (components/versions.py).
# Every failure is one line naming the node: not ready, status endpoint down, not JSON, a field missing, errors
# growing, the attack not counted. Runs as the SSH user; no secrets.
# Tested on Debian 12 and Ubuntu 24.04, and in a sandbox (stub curl modelling the counters).
set -euo pipefail

readonly SCRIPT_NAME="health-check"
readonly ATTACK_URL="http://localhost/etc/passwd"
readonly STATUS_URL="http://127.0.0.8/wallarm-status"

# Reads the status answer on stdin; prints "requests attacks tnt_errors", or one sentence on stderr and exits 1.
read -r -d '' PARSE_PY <<'PY' || true
import json, sys
raw = sys.stdin.buffer.read()
shown = "".join(c if c.isprintable() else "?" for c in raw.strip()[:80].decode("utf-8", "backslashreplace"))
def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)
try:
    data = json.loads(raw)
except (ValueError, RecursionError):
    fail(f"answered something that is not JSON: {shown!r}" if raw.strip() else "answered nothing")
if not isinstance(data, dict):
    fail(f"answered JSON that is not an object: {shown!r}")
counters = []
for field in ("requests", "attacks", "tnt_errors"):
    if field not in data:
        fail(f"answered JSON without the {field} field (it has: {', '.join(sorted(map(str, data)))[:200] or 'none'})")
    value = data[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        fail(f"answered {field} {str(value)[:40]!r}, which is not a counter")
    counters.append(str(value))
print(" ".join(counters))
PY
readonly PARSE_PY

WORK=""

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  echo "Usage: $SCRIPT_NAME --node NAME [--wallarm-mode off|monitoring|safe_blocking|block] [--ready-url URL] [--attempts N] [--interval SECONDS]" >&2
}

cleanup() { [[ -z $WORK ]] || rm -rf "$WORK"; }

# Prints "requests attacks tnt_errors"; on failure prints why (one line) and returns 1.
read_status() {
  local rc=0 why
  curl --fail --silent --show-error --max-time 5 -o "$WORK/status" "$STATUS_URL" 2>"$WORK/curl.err" || rc=$?
  if ((rc != 0)); then
    why=$(tail -n 1 "$WORK/curl.err" | tr -cd '[:print:]' | cut -c1-160)
    printf 'the status endpoint %s is down (curl exit %s%s)' "$STATUS_URL" "$rc" "${why:+: $why}"
    return 1
  fi
  if ! python3 -c "$PARSE_PY" <"$WORK/status" 2>"$WORK/parse.err"; then
    printf 'the status endpoint %s %s' "$STATUS_URL" "$(head -n 1 "$WORK/parse.err" | cut -c1-300)"
    return 1
  fi
}

# Prints nothing when the readiness endpoint answers 200; otherwise prints why (one line) and returns 1.
read_ready() {
  local rc=0 code why
  code=$(curl --silent --show-error --max-time 5 -o /dev/null -w '%{http_code}' "$1" 2>"$WORK/curl.err") || rc=$?
  [[ $rc -eq 0 && $code == 200 ]] && return 0
  if ((rc != 0)); then
    why=$(tail -n 1 "$WORK/curl.err" | tr -cd '[:print:]' | cut -c1-160)
    printf 'the readiness endpoint %s is down (curl exit %s%s)' "$1" "$rc" "${why:+: $why}"
  else
    printf 'the readiness endpoint %s answered HTTP %s, not 200: wd says the node is starting, degraded or failed' \
      "$1" "$(tr -cd '0-9' <<<"$code" | cut -c1-3)"
  fi
  return 1
}

send_attack() {
  curl --silent --output /dev/null --max-time 10 "$ATTACK_URL" || log "the test attack $ATTACK_URL got no answer"
}

main() {
  local node="" mode="" ready="" attempts=20 interval=3 n line why=""
  local requests0 attacks0 errors0 requests attacks errors counted=false
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --node) node=${2:?}; shift 2 ;;
      --wallarm-mode) mode=${2:?}; shift 2 ;;
      --ready-url) ready=${2:?}; shift 2 ;;
      --attempts) attempts=${2:?}; shift 2 ;;
      --interval) interval=${2:?}; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) usage; die "unknown option: $1" ;;
    esac
  done
  [[ -n $node ]] || die "--node is required"
  [[ -z $mode || $mode =~ ^(off|monitoring|safe_blocking|block)$ ]] || die "--wallarm-mode must be off, monitoring, safe_blocking or block, got '$mode'"
  [[ $attempts =~ ^[1-9][0-9]*$ && $interval =~ ^[0-9]+$ ]] || die "--attempts and --interval must be numbers"
  local -r unhealthy="filtering node $node is unhealthy"
  WORK=$(mktemp -d)
  trap cleanup EXIT

  [[ -z $ready || $ready =~ ^http://(127\.[0-9.]+|localhost)(:[0-9]+)?/[^[:space:]]*$ ]] ||
    die "--ready-url must be an http:// URL on loopback, got '$ready'"

  if [[ -n $ready ]]; then
    for ((n = 1; n <= attempts; n++)); do
      line=$(read_ready "$ready") && break
      why=$line
      ((n < attempts)) && sleep "$interval"
    done
    ((n <= attempts)) || die "$unhealthy: $why (after $attempts tries)"
    log "$node: ready ($ready answered 200)"
  fi

  # Before: the status may need a moment after a reload.
  for ((n = 1; n <= attempts; n++)); do
    line=$(read_status) && break
    why=$line
    line=""
    ((n < attempts)) && sleep "$interval"
  done
  [[ -n $line ]] || die "$unhealthy: $why (after $attempts tries)"
  read -r requests0 attacks0 errors0 <<<"$line"
  log "$node: before the test attack: requests $requests0, attacks $attacks0, tnt_errors $errors0"

  log "$node: sending the test attack $ATTACK_URL"
  send_attack
  for ((n = 1; n <= attempts; n++)); do
    if ! line=$(read_status); then
      why=$line
      ((n < attempts)) && sleep "$interval"
      continue
    fi
    read -r requests attacks errors <<<"$line"
    if ((requests < requests0)); then  # counters went back: NGINX restarted during the check
      log "$node: the counters went back (requests $requests0 -> $requests; NGINX restarted?): sending the attack again"
      requests0=$requests attacks0=$attacks errors0=$errors
      send_attack
      continue
    fi
    ((errors <= errors0)) ||
      die "$unhealthy: tnt_errors grew from $errors0 to $errors during the check: NGINX cannot write to wstore (see /var/log/nginx/error.log here and /opt/wallarm/var/log/wallarm/wstore-out.log on the postanalytics servers)"
    if [[ $mode == off ]] || ((requests > requests0 && attacks > attacks0)); then
      counted=true
      break
    fi
    why="the status never counted the test attack (requests $requests0 -> $requests, attacks $attacks0 -> $attacks): it did not reach NGINX-Wallarm, or Wallarm did not analyse it"
    ((n < attempts)) && sleep "$interval"
  done
  $counted || die "$unhealthy: $why (after $attempts reads)"

  # A failed write shows a moment after the request: read once more before saying healthy.
  sleep "$interval"
  line=$(read_status) || die "$unhealthy: $line"
  read -r requests attacks errors <<<"$line"
  ((errors <= errors0)) ||
    die "$unhealthy: tnt_errors grew from $errors0 to $errors during the check: NGINX cannot write to wstore (see /var/log/nginx/error.log here and /opt/wallarm/var/log/wallarm/wstore-out.log on the postanalytics servers)"

  if [[ $mode == off ]]; then
    log "$node: wallarm_mode off: Wallarm analyses nothing, so only the status and tnt_errors were checked (tnt_errors $errors, unchanged)"
  else
    log "$node: healthy: the test attack was counted (requests +$((requests - requests0)), attacks +$((attacks - attacks0))) and tnt_errors stayed at $errors"
  fi
  printf '{"node": "%s", "attack_counted": %s, "tnt_errors_before": %s, "tnt_errors": %s}\n' \
    "$node" "$([[ $mode == off ]] && echo false || echo true)" "$errors0" "$errors"
}

main "$@"
