#!/usr/bin/env bash
# Checks one filtering node end to end, as Wallarm's guide does: sends a test attack through NGINX, then reads
# the status service and requires tnt_errors 0 (no failed writes to wstore), retrying a short while.
# Runs as the SSH user; no secrets. Tested on Debian 12 and Ubuntu 24.04, and in a sandbox (stub curl).
set -euo pipefail

readonly SCRIPT_NAME="health-check"
readonly ATTACK_URL="http://localhost/etc/passwd"
readonly STATUS_URL="http://127.0.0.8/wallarm-status"

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  echo "Usage: $SCRIPT_NAME --node NAME [--attempts N] [--interval SECONDS]" >&2
}

tnt_errors() {
  python3 -c 'import json, sys; print(int(json.load(sys.stdin)["tnt_errors"]))'
}

main() {
  local node="" attempts=20 interval=3 n status errors="unknown"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --node) node=${2:?}; shift 2 ;;
      --attempts) attempts=${2:?}; shift 2 ;;
      --interval) interval=${2:?}; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) usage; die "unknown option: $1" ;;
    esac
  done
  [[ -n $node ]] || die "--node is required"
  [[ $attempts =~ ^[1-9][0-9]*$ && $interval =~ ^[0-9]+$ ]] || die "--attempts and --interval must be numbers"

  log "$node: sending the test attack $ATTACK_URL"
  curl --silent --output /dev/null --max-time 10 "$ATTACK_URL" || log "$node: the test attack got no answer"
  for ((n = 1; n <= attempts; n++)); do
    if status=$(curl --fail --silent --show-error --max-time 5 "$STATUS_URL" 2>&1) &&
       errors=$(printf '%s' "$status" | tnt_errors 2>/dev/null); then
      if [[ $errors == 0 ]]; then
        log "$node: healthy, tnt_errors 0"
        printf '{"node": "%s", "tnt_errors": 0}\n' "$node"
        return 0
      fi
    else
      errors="unreadable ($status)"
    fi
    ((n < attempts)) && sleep "$interval"
  done
  die "filtering node $node is unhealthy: tnt_errors is $errors after $attempts checks of $STATUS_URL; it cannot write to wstore (see /var/log/nginx/error.log here and /opt/wallarm/var/log/wallarm/wstore-out.log on the postanalytics servers)"
}

main "$@"
