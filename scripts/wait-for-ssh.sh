#!/usr/bin/env bash
# Waits until an SSH server answers on HOST:PORT with its banner (SSH-2.0-...). No key is exchanged and nothing is
# sent: it only tells a booting host from a running sshd. pulumi-command retries a failed handshake (a wrong host
# key too) exactly like a failed dial, so the steps that pin a host key dial only a few times, after this wait;
# the minutes a new instance needs to boot are spent here (components/host.py, "Host keys" in docs/security.md).
# Runs from stdin (`bash -s -- --host ...`) on the deployer (to the jump host; to the nodes without one) or on the
# jump host (to a node). Needs bash and coreutils' timeout. Tested on Debian 12 and Ubuntu 24.04.
set -euo pipefail

readonly SCRIPT_NAME="wait-for-ssh"
readonly DEFAULT_TIMEOUT=900
readonly RETRY_SECONDS=3

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  cat >&2 <<USAGE
Usage: $SCRIPT_NAME --host ADDRESS [--port PORT] [--timeout SECONDS]
  --host      IPv4 address or DNS name of the SSH server
  --port      its port (default 22)
  --timeout   how long to wait, in seconds, at least 1 (default $DEFAULT_TIMEOUT)
USAGE
}

# One attempt: connect, read the first line, accept it if it is an SSH-2.0 banner (RFC 4253, section 4.2).
answers_ssh() {
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
  timeout 6 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 5 line <&3 && [[ $line == SSH-2.0-* ]]' \
    _ "$1" "$2" 2>/dev/null
}

main() {
  local host="" port=22 timeout=$DEFAULT_TIMEOUT
  while (($#)); do
    case "$1" in
      --host) host=${2:-}; shift 2 || die "--host needs a value" ;;
      --port) port=${2:-}; shift 2 || die "--port needs a value" ;;
      --timeout) timeout=${2:-}; shift 2 || die "--timeout needs a value" ;;
      -h | --help) usage; exit 0 ;;
      *) usage; die "unknown argument: $1" ;;
    esac
  done
  [[ $host =~ ^[A-Za-z0-9.-]+$ ]] || die "--host must be an IPv4 address or a DNS name, got '$host'"
  if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((port < 1 || port > 65535)); then
    die "--port must be 1 to 65535, got '$port'"
  fi
  if ! [[ $timeout =~ ^[0-9]{1,6}$ ]] || ((timeout < 1)); then
    die "--timeout must be a whole number of seconds, got '$timeout'"
  fi

  local deadline=$((SECONDS + timeout))
  log "waiting up to ${timeout}s for an SSH server on $host:$port"
  until answers_ssh "$host" "$port"; do
    ((SECONDS < deadline)) || die "no SSH server answered on $host:$port within ${timeout}s"
    sleep "$RETRY_SECONDS"
  done
  log "$host:$port answers SSH"
}

main "$@"
