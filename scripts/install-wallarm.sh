#!/usr/bin/env bash
# Installs one part of a Wallarm 6.x or 7.x node (postanalytics or filtering) with the all-in-one installer, in batch
# mode, once per version. With --with-nginx, first installs the distribution's NGINX (filtering nodes need it).
#
# Before the download runs as root it must be a makeself archive (a #!/bin/sh header written by Makeself, at least
# as long as the payload it declares, at least 1 MiB), match --sha256 when one is pinned, pass makeself's own
# checksum (--check), and be built for this host's architecture (uname -m). A failed download names its HTTP
# status; 4xx answers other than 408/429 are not retried.
#
# The Wallarm token comes on standard input (one line); it is never an argument of this script, never printed,
# and never kept in our logs: each run starts its logs afresh (0600), and they are scrubbed when the run ends,
# success or failure (the token, its base64 and URL-encoded forms, anything passed as -t/--token or token=, and
# long token-like strings, which covers a token rotated away). What is shown of the installer's output is masked
# the same way. Remaining exposure: the installer takes the token only as `-t`, so it is in that process's
# argument list (readable by local users) while the installer runs.
# Tested on the Debian 12 and Ubuntu 24.04 AWS cloud images, and in a sandbox (WALLARM_ROOT, stub installer).
set -euo pipefail

readonly SCRIPT_NAME="install-wallarm"
readonly ROOT="${WALLARM_ROOT:-}"
readonly STATE_DIR="$ROOT/var/lib/wallarm-deploy"
readonly MARKER="$STATE_DIR/installed"
readonly LOG_DIR="$ROOT/var/log/wallarm-deploy"
readonly INSTALL_LOG="$LOG_DIR/install.log"
readonly DOWNLOAD_LOG="$LOG_DIR/download.log"
readonly NGINX_BIN="$ROOT/usr/sbin/nginx"
readonly ME_API_HOST="me1.api.wallarm.com"
# Real all-in-one installers are hundreds of MB; an error page, an empty answer or a cut download is not.
readonly MIN_INSTALLER_BYTES=1048576
# makeself's shell header (with its filesizes= line) sits in the first bytes of the archive.
readonly HEADER_BYTES=65536

# Set once read from stdin; the EXIT trap scrubs it (and its encodings) from the logs.
TOKEN=""

# Masks tokens in text: the token comes on fd 3, never in the arguments (the process list is world-readable).
# With "-" it filters stdin to stdout; with file names it rewrites those files in place (0600).
read -r -d '' MASK_PY <<'PY' || true
import base64, os, re, sys, urllib.parse
token = os.fdopen(3).read().strip()
forms = set()
if token:
    raw = token.encode()
    forms |= {token, urllib.parse.quote(token, safe=""), urllib.parse.quote_plus(token)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms |= {encode(raw).decode(), encode(raw + b"\n").decode()}
        for pad, drop in ((0, 0), (1, 2), (2, 3)):  # the token inside longer base64 text, at any alignment
            text = encode(b"\0" * pad + raw).decode()
            forms.add(text[drop:4 * ((pad + len(raw)) // 3)])
forms = sorted((f for f in forms if len(f) >= 8), key=len, reverse=True)
FLAG = re.compile(r"((?:^|\s)(?:-t|--token)(?:\s+|=))[^\s'\"]+")
ASSIGN = re.compile(r"(?i)(token['\"]?\s*[:=]\s*['\"]?)[^\s'\",;]+")
LONG = re.compile(r"(?<![A-Za-z0-9+/=_])(?=[A-Za-z0-9+/=_]*[0-9])(?=[A-Za-z0-9+/=_]*[A-Za-z])[A-Za-z0-9+/=_]{32,}")
def mask(text):
    for form in forms:
        text = text.replace(form, "***")
    return LONG.sub("***", ASSIGN.sub(r"\1***", FLAG.sub(r"\1***", text)))
if sys.argv[1:] == ["-"]:
    sys.stdout.write(mask(sys.stdin.read()))
for path in (p for p in sys.argv[1:] if p != "-" and os.path.isfile(p)):
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        data = fh.read()
    fd = os.open(path + ".scrub", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(mask(data))
    os.replace(path + ".scrub", path)
PY
readonly MASK_PY

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$SCRIPT_NAME" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  cat >&2 <<USAGE
Usage: $SCRIPT_NAME --version X.Y.Z --arch x86_64|aarch64 --url https://... --mode postanalytics|filtering --cloud US|EU|ME
                   [--group GROUP] [--sha256 HEX] [--with-nginx] [--attempts N] [--retry-delay SECONDS]  < token
  --sha256   the installer's SHA-256 (64 lowercase hex digits): a download that differs is never run
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

mask_stream() {
  python3 -c "$MASK_PY" - 3<<<"$TOKEN" 2>/dev/null || echo "  (the log could not be masked, so it is not shown)"
}

scrub_logs() {
  [[ -d $LOG_DIR ]] || return 0
  python3 -c "$MASK_PY" "$INSTALL_LOG" "$DOWNLOAD_LOG" 3<<<"$TOKEN" 2>/dev/null ||
    rm -f "$INSTALL_LOG" "$DOWNLOAD_LOG"  # fail closed: no log rather than a log with a token
  chmod 0600 "$INSTALL_LOG" "$DOWNLOAD_LOG" 2>/dev/null || true
}

finish() {
  local rc=$?
  scrub_logs || true
  exit "$rc"
}

start_logs() {
  install -d -m 0700 "$STATE_DIR" "$LOG_DIR"
  # Fresh logs every run: nothing of an earlier run (or an earlier token) survives.
  rm -f "$INSTALL_LOG" "$DOWNLOAD_LOG"
  (umask 077 && : >"$INSTALL_LOG" && : >"$DOWNLOAD_LOG")
}

check_arch() {
  local wanted=$1 machine host
  machine=$(uname -m)
  case "$machine" in
    x86_64|amd64) host=x86_64 ;;
    aarch64|arm64) host=aarch64 ;;
    *) host=$machine ;;
  esac
  [[ $host == "$wanted" ]] || die "--arch is $wanted but this host is $machine (uname -m): the installer would not run here; the instance type and the installer's architecture disagree"
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

# Why a curl run failed, in a few words: "HTTP 404", or curl's own last message when no HTTP answer came.
failure_reason() {
  local rc=$1 code=$2 last
  last=$(tail -n 1 "$DOWNLOAD_LOG" 2>/dev/null | tr -cd '[:print:]' | cut -c1-200)
  if [[ $code =~ ^[4-5][0-9][0-9]$ ]]; then
    printf 'HTTP %s' "$code"
  elif [[ $code =~ ^[1-3][0-9][0-9]$ ]]; then
    printf 'HTTP %s, then the transfer failed (curl exit %s%s)' "$code" "$rc" "${last:+: $last}"
  else
    printf 'no HTTP answer (curl exit %s%s)' "$rc" "${last:+: $last}"
  fi
}

# 4xx answers will not change on a retry (408 timeout and 429 throttling aside).
is_permanent() {
  [[ $1 =~ ^4[0-9][0-9]$ && $1 != 408 && $1 != 429 ]]
}

download() {
  local url=$1 dest=$2 attempts=$3 delay=$4 n rc code reason=""
  for ((n = 1; n <= attempts; n++)); do
    rc=0
    code=$(curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 --max-time 600 \
             --write-out '%{http_code}' -o "$dest.part" "$url" 2>>"$DOWNLOAD_LOG") || rc=$?
    if ((rc == 0)); then
      mv "$dest.part" "$dest"
      log "downloaded $url (attempt $n, HTTP ${code:-?})"
      return 0
    fi
    rm -f "$dest.part"
    reason=$(failure_reason "$rc" "$code")
    log "download of $url failed (attempt $n of $attempts): $reason"
    if is_permanent "$code"; then
      die "download of $url failed: $reason, which a retry will not change: is there an installer for this version and architecture?"
    fi
    ((n < attempts)) && sleep "$delay"
  done
  die "download of $url failed after $attempts attempts: $reason; check egress to meganode.wallarm.com:443 ($DOWNLOAD_LOG)"
}

refuse_download() {
  local file=$1 url=$2 why=$3
  rm -f "$file"
  die "the download of $url $why; refusing to run it"
}

# A makeself archive: a #!/bin/sh header written by Makeself, declaring the payload sizes, and at least that long.
verify_archive() {
  local file=$1 url=$2 size header first total=0 n
  local -r sizes_line=$'(^|\n)filesizes="([0-9 ]+)"'
  size=$(stat -c %s "$file")
  ((size > 0)) || refuse_download "$file" "$url" "is empty"
  ((size >= MIN_INSTALLER_BYTES)) ||
    refuse_download "$file" "$url" "is only $size bytes (an installer has at least $MIN_INSTALLER_BYTES): an error page or a cut download"
  header=$(head -c "$HEADER_BYTES" "$file" | LC_ALL=C tr -d '\000')
  first=${header%%$'\n'*}
  [[ $first == '#!/bin/sh'* || $first == '#!/bin/bash'* ]] ||
    refuse_download "$file" "$url" "does not start with #!/bin/sh, so it is not a makeself archive"
  [[ $header == *"generated using Makeself"* ]] ||
    refuse_download "$file" "$url" "has no makeself header"
  [[ $header =~ $sizes_line ]] ||
    refuse_download "$file" "$url" "declares no payload size (filesizes=), so it is not a makeself archive"
  for n in ${BASH_REMATCH[2]}; do total=$((total + n)); done
  ((size > total)) ||
    refuse_download "$file" "$url" "is cut short: $size bytes, but its header declares a payload of $total bytes"
}

verify_sha256() {
  local file=$1 url=$2 expected=$3 actual
  [[ -n $expected ]] || return 0
  actual=$(sha256sum "$file" | cut -d' ' -f1)
  [[ $actual == "$expected" ]] ||
    refuse_download "$file" "$url" "has SHA-256 $actual, but --sha256 pins $expected (a changed or tampered installer: pin a new digest only after vetting it)"
  log "the installer matches the pinned SHA-256"
}

show_log_masked() {
  tail -n 40 "$INSTALL_LOG" | mask_stream | while IFS= read -r line; do printf '  | %s\n' "$line" >&2; done
}

run_installer() {
  local file=$1 cloud=$2 group=$3 mode=$4 rc=0
  local -a cloud_args=(-c "$cloud")
  # -c ME exists only from 6.10.3 on; -H works on every 6.x.
  [[ $cloud == ME ]] && cloud_args=(-H "$ME_API_HOST")
  local -a labels=()
  [[ -n $group ]] && labels=("WALLARM_LABELS=group=$group")
  log "running the installer: mode $mode, cloud $cloud${group:+, group $group} (output in $INSTALL_LOG)"
  # The token is an installer argument because the installer documents no other way to pass it.
  env "${labels[@]}" sh "$file" -- --batch -t "$TOKEN" "${cloud_args[@]}" "$mode" >>"$INSTALL_LOG" 2>&1 || rc=$?
  if ((rc != 0)); then
    log "the installer's last lines:"
    show_log_masked
    die "the Wallarm installer exited with $rc (mode $mode)"
  fi
  [[ -d $ROOT/opt/wallarm ]] || die "the Wallarm installer exited 0 but left no /opt/wallarm (mode $mode): see $INSTALL_LOG"
}

# Says (by file name only) where Wallarm's own files keep the token; they are not ours to edit.
report_kept_token() {
  local kept
  kept=$(grep -rlsF -f <(printf '%s\n' "$TOKEN") "$ROOT/opt/wallarm/env.list" "$ROOT/opt/wallarm/etc" \
           "$ROOT/opt/wallarm/var/log" 2>/dev/null | tr '\n' ' ' || true)
  [[ -z $kept ]] || log "WARNING: Wallarm's own files hold the token (root-only, left as they are): $kept"
}

main() {
  local version="" arch="" url="" mode="" cloud="" group="" sha256="" with_nginx=false attempts=5 delay=10
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --version) version=${2:?}; shift 2 ;;
      --arch) arch=${2:?}; shift 2 ;;
      --url) url=${2:?}; shift 2 ;;
      --mode) mode=${2:?}; shift 2 ;;
      --cloud) cloud=${2:?}; shift 2 ;;
      --group) group=${2:?}; shift 2 ;;
      --sha256) sha256=${2:?}; shift 2 ;;
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
  [[ -z $sha256 || $sha256 =~ ^[0-9a-f]{64}$ ]] || die "--sha256 must be 64 lowercase hex digits (as sha256sum prints them), got '$sha256'"
  [[ $attempts =~ ^[1-9][0-9]*$ && $delay =~ ^[0-9]+$ ]] || die "--attempts and --retry-delay must be numbers"
  check_arch "$arch"

  TOKEN=$(read_token)
  local wanted="$version $arch $mode"
  if already_installed "$wanted"; then
    log "Wallarm $wanted is already installed: nothing to do"
    return 0
  fi
  trap finish EXIT
  start_logs
  $with_nginx && install_nginx

  local file="$STATE_DIR/wallarm-$version.$arch-glibc.sh"
  download "$url" "$file" "$attempts" "$delay"
  verify_archive "$file" "$url"
  verify_sha256 "$file" "$url" "$sha256"
  # makeself's own check of its embedded checksums (the first code of the download that runs, after the above).
  sh "$file" --check >>"$INSTALL_LOG" 2>&1 || refuse_download "$file" "$url" "failed makeself's integrity check (--check)"
  run_installer "$file" "$cloud" "$group" "$mode"
  report_kept_token
  printf '%s\n' "$wanted" >"$MARKER.tmp" && mv "$MARKER.tmp" "$MARKER"
  rm -f "$file"
  log "Wallarm $wanted installed"
}

main "$@"
