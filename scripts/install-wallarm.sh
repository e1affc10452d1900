#!/usr/bin/env bash
# Installs one part of a Wallarm 6.x node (postanalytics or filtering) with the all-in-one installer, in batch
# mode, once per version. With --with-nginx, first installs the distribution's NGINX (filtering nodes need it).
# The Wallarm token comes on standard input (one line); it is never an argument of this script and never printed:
# the installer's output goes to a root-only log, and what is shown of it on failure has the token masked.
# Tested on the Debian 12 and Ubuntu 24.04 AWS cloud images, and in a sandbox (WALLARM_ROOT, stub installer).
set -euo pipefail

readonly SCRIPT_NAME="install-wallarm"
readonly ROOT="${WALLARM_ROOT:-}"
readonly STATE_DIR="$ROOT/var/lib/wallarm-deploy"
readonly MARKER="$STATE_DIR/installed"
readonly LOG_DIR="$ROOT/var/log/wallarm-deploy"
readonly NGINX_BIN="$ROOT/usr/sbin/nginx"
readonly ME_API_HOST="me1.api.wallarm.com"

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  cat >&2 <<USAGE
Usage: $SCRIPT_NAME --version X.Y.Z --arch x86_64|aarch64 --url https://... --mode postanalytics|filtering --cloud US|EU|ME
                   [--group GROUP] [--with-nginx] [--attempts N] [--retry-delay SECONDS]  < token
USAGE
}

read_token() {
  local token=""
  IFS= read -r token || true
  token=${token%$'\r'}
  [[ -n $token ]] || die "no Wallarm token on standard input"
  [[ $token =~ ^[A-Za-z0-9+/=._:-]+$ ]] || die "the Wallarm token on standard input has characters a token cannot have"
  printf '%s' "$token"
}

already_installed() {
  local wanted=$1
  [[ -f $MARKER ]] || return 1
  local have
  have=$(<"$MARKER")
  [[ $have == "$wanted" ]] && return 0
  die "this host has '$have' installed, not '$wanted': Wallarm advises a clean machine for another version or mode, so replace the instance"
}

install_nginx() {
  if [[ -x $NGINX_BIN ]]; then
    log "NGINX is already installed"
    return
  fi
  log "installing the distribution's NGINX"
  # A fresh Ubuntu image runs unattended-upgrades at boot: wait for the dpkg lock rather than fail.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq update >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq install -y nginx >&2
  [[ -x $NGINX_BIN ]] || die "apt-get finished but $NGINX_BIN is missing"
}

download() {
  local url=$1 dest=$2 attempts=$3 delay=$4 n
  for ((n = 1; n <= attempts; n++)); do
    if curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 --max-time 600 \
         -o "$dest.part" "$url" 2>>"$LOG_DIR/download.log"; then
      mv "$dest.part" "$dest"
      log "downloaded $url (attempt $n)"
      return 0
    fi
    log "download of $url failed (attempt $n of $attempts)"
    rm -f "$dest.part"
    ((n < attempts)) && sleep "$delay"
  done
  die "download of $url failed after $attempts attempts: check egress to meganode.wallarm.com:443 ($LOG_DIR/download.log)"
}

show_log_masked() {
  local token=$1 line
  tail -n 40 "$LOG_DIR/install.log" | while IFS= read -r line; do printf '  | %s\n' "${line//"$token"/***}" >&2; done
}

run_installer() {
  local file=$1 token=$2 cloud=$3 group=$4 mode=$5 rc=0
  local -a cloud_args=(-c "$cloud")
  # -c ME exists only from 6.10.3 on; -H works on every 6.x.
  [[ $cloud == ME ]] && cloud_args=(-H "$ME_API_HOST")
  local -a labels=()
  [[ -n $group ]] && labels=("WALLARM_LABELS=group=$group")
  log "running the installer: mode $mode, cloud $cloud${group:+, group $group} (output in $LOG_DIR/install.log)"
  # The token is an installer argument because the installer documents no other way to pass it.
  env "${labels[@]}" sh "$file" -- --batch -t "$token" "${cloud_args[@]}" "$mode" >>"$LOG_DIR/install.log" 2>&1 || rc=$?
  if ((rc != 0)); then
    log "the installer's last lines:"
    show_log_masked "$token"
    die "the Wallarm installer exited with $rc (mode $mode)"
  fi
}

main() {
  local version="" arch="" url="" mode="" cloud="" group="" with_nginx=false attempts=5 delay=10
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --version) version=${2:?}; shift 2 ;;
      --arch) arch=${2:?}; shift 2 ;;
      --url) url=${2:?}; shift 2 ;;
      --mode) mode=${2:?}; shift 2 ;;
      --cloud) cloud=${2:?}; shift 2 ;;
      --group) group=${2:?}; shift 2 ;;
      --with-nginx) with_nginx=true; shift ;;
      --attempts) attempts=${2:?}; shift 2 ;;
      --retry-delay) delay=${2:?}; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) usage; die "unknown option: $1" ;;
    esac
  done
  [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--version must be X.Y.Z, got '$version'"
  [[ $arch == x86_64 || $arch == aarch64 ]] || die "--arch must be x86_64 or aarch64, got '$arch'"
  [[ $url == https://*/wallarm-$version.$arch-glibc.sh ]] || die "--url must be the https URL of wallarm-$version.$arch-glibc.sh, got '$url'"
  [[ $mode == postanalytics || $mode == filtering ]] || die "--mode must be postanalytics or filtering, got '$mode'"
  [[ $cloud == US || $cloud == EU || $cloud == ME ]] || die "--cloud must be US, EU or ME, got '$cloud'"
  [[ -z $group || $group =~ ^[A-Za-z0-9._-]+$ ]] || die "--group has characters a group label cannot have"
  [[ $attempts =~ ^[1-9][0-9]*$ && $delay =~ ^[0-9]+$ ]] || die "--attempts and --retry-delay must be numbers"

  local token
  token=$(read_token)
  local wanted="$version $arch $mode"
  if already_installed "$wanted"; then
    log "Wallarm $wanted is already installed: nothing to do"
    return 0
  fi
  install -d -m 0700 "$STATE_DIR" "$LOG_DIR"
  $with_nginx && install_nginx

  local file="$STATE_DIR/wallarm-$version.$arch-glibc.sh"
  download "$url" "$file" "$attempts" "$delay"
  # No checksums are published; makeself verifies the archive's embedded checksum.
  sh "$file" --check >>"$LOG_DIR/install.log" 2>&1 || die "the installer archive $file failed its integrity check"
  run_installer "$file" "$token" "$cloud" "$group" "$mode"
  printf '%s\n' "$wanted" >"$MARKER.tmp" && mv "$MARKER.tmp" "$MARKER"
  rm -f "$file"
  log "Wallarm $wanted installed"
}

main "$@"
