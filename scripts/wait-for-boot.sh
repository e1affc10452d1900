#!/usr/bin/env bash
# Waits until a new instance has finished booting: cloud-init done (or, on a host without cloud-init, systemd
# reporting running or degraded), and the tools the next steps need present (python3 with PyYAML, for
# apply_spec.py). Runs as the SSH user; no secrets.
# Tested on the Debian 12 and Ubuntu 24.04 AWS cloud images, and in a sandbox (WALLARM_ROOT, stub cloud-init).
set -euo pipefail

readonly SCRIPT_NAME="wait-for-boot"
readonly DEFAULT_TIMEOUT=900

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  cat >&2 <<USAGE
Usage: $SCRIPT_NAME [--timeout SECONDS]
  --timeout   how long to wait for cloud-init or systemd, in seconds, at least 1 (default $DEFAULT_TIMEOUT)
USAGE
}

wait_for_cloud_init() {
  local timeout=$1 rc=0
  log "waiting up to ${timeout}s for cloud-init"
  timeout "$timeout" cloud-init status --wait >/dev/null || rc=$?
  case "$rc" in
    0) log "cloud-init is done" ;;
    2) log "cloud-init is done, with recoverable errors (see /var/log/cloud-init.log)" ;;
    124) die "cloud-init did not finish within ${timeout}s" ;;
    *) die "cloud-init failed (exit $rc): see /var/log/cloud-init-output.log" ;;
  esac
}

# Without cloud-init (a custom image), boot is done when systemd says so; "degraded" (a unit failed) is enough.
wait_for_systemd() {
  local timeout=$1 state="" rc=0
  log "no cloud-init on this host: waiting up to ${timeout}s for systemd to finish booting"
  state=$(timeout "$timeout" systemctl is-system-running --wait 2>/dev/null) || rc=$?
  case "$state" in
    running) log "systemd reports running" ;;
    degraded) log "systemd reports degraded (a unit failed: see systemctl --failed); going on" ;;
    *)
      ((rc != 124)) || die "systemd did not finish booting within ${timeout}s"
      die "systemd reports '${state:-nothing}' (exit $rc), not running or degraded: see systemctl --failed" ;;
  esac
}

check_tools() {
  command -v python3 >/dev/null || die "python3 is missing: the configure step needs python3 and PyYAML"
  python3 -c 'import yaml' 2>/dev/null || die "PyYAML is missing: install python3-yaml (cloud images ship it)"
}

main() {
  local timeout=$DEFAULT_TIMEOUT
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) usage; die "unknown option: $1" ;;
    esac
  done
  [[ $timeout =~ ^0*[1-9][0-9]*$ ]] || die "--timeout must be a positive whole number of seconds, got '$timeout'"
  timeout=$((10#$timeout))
  if command -v cloud-init >/dev/null 2>&1; then
    wait_for_cloud_init "$timeout"
  else
    wait_for_systemd "$timeout"
  fi
  check_tools
  log "ready"
}

main "$@"
