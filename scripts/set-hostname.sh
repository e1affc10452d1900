#!/usr/bin/env bash
# Names the host (<stack>-filtering-3, <stack>-postanalytics-0) before the Wallarm installer registers it, so that
# Wallarm Console lists it as <name>_<node UUID> instead of ip-10-0-x-y_<node UUID>. Keeps the name across reboots:
# cloud-init's update_hostname module runs at every boot and would put the metadata's ip-... name back, so a
# cloud.cfg.d drop-in gives it our name (hostname, fqdn); /etc/hosts maps the name to 127.0.1.1 (sudo resolves it).
# Idempotent: a second run with the same name changes nothing and says so. Runs as root; no secrets.
# Tested on the Debian 12 and Ubuntu 24.04 AWS cloud images' layout, and in a sandbox (WALLARM_ROOT, stub hostnamectl).
set -euo pipefail

readonly SCRIPT_NAME="set-hostname"
readonly ROOT=${WALLARM_ROOT:-}
readonly DROP_IN="$ROOT/etc/cloud/cloud.cfg.d/99-wallarm-hostname.cfg"
readonly HOSTS="$ROOT/etc/hosts"
readonly HOSTNAME_FILE="$ROOT/etc/hostname"

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  cat >&2 <<USAGE
Usage: $SCRIPT_NAME --name NAME
  --name   the host name: lowercase letters, digits and hyphens, 1 to 63, not starting or ending with a hyphen
USAGE
}

# Writes a file through a temporary file and a rename: a run killed at any line leaves the old or the new file.
write_atomically() {
  local path=$1 content=$2 tmp
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  printf '%s' "$content" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$path"
}

hosts_text() {
  local name=$1
  if [[ -f $HOSTS ]]; then
    grep -v -E '^127\.0\.1\.1[[:space:]]' "$HOSTS" || true
  fi
  printf '127.0.1.1 %s\n' "$name"
}

main() {
  local name=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name) name=${2:?--name needs a value}; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) usage; die "unknown option: $1" ;;
    esac
  done
  [[ $name =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
    die "--name must be 1 to 63 lowercase letters, digits or inner hyphens, got '$name'"
  local drop_in hosts
  drop_in=$(printf '# Managed by Pulumi (wallarm-postanalytics): the name Wallarm Console shows.\nhostname: %s\nfqdn: %s\n' \
    "$name" "$name")
  hosts=$(hosts_text "$name")$'\n'
  if [[ "$(cat "$DROP_IN" 2>/dev/null || true)" == "$drop_in" && "$(cat "$HOSTS" 2>/dev/null || true)"$'\n' == "$hosts" &&
        "$(cat "$HOSTNAME_FILE" 2>/dev/null || true)" == "$name" ]]; then
    log "no change: the host is already named $name"
    return 0
  fi
  write_atomically "$DROP_IN" "$drop_in"
  write_atomically "$HOSTS" "$hosts"
  hostnamectl set-hostname "$name" || die "hostnamectl set-hostname $name failed"
  log "named the host $name"
}

main "$@"
