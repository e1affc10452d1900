#!/bin/sh
# This script was generated using Makeself 2.4.5 (in appearance only: it is the sandbox's stand-in for Wallarm's
# all-in-one installer, a makeself archive). The stub curl serves this header followed by a payload of the size
# declared below, ending with STUB_PAYLOAD_END; `--check` looks for that end, as makeself checks its checksums.
#   sh wallarm-X.Y.Z.ARCH-glibc.sh --check
#   [WALLARM_LABELS=group=G] sh wallarm-X.Y.Z.ARCH-glibc.sh -- --batch -t TOKEN [-c US|EU|ME | -H HOST] MODE
# It lays down the files the real one writes (under $WALLARM_ROOT), with keys we do not manage, and exits
# non-zero on a bad token (one that starts with "invalid") or mode, or when filtering finds no NGINX.
# It prints the token (as a careless installer might) and $STUB_INSTALLER_SAY, for the masking tests.
filesizes="1572864"
set -eu
record() { printf '%s\n' "$*" >>"${STUB_LOG:?}"; }
if [ "${1:-}" = "--check" ]; then
  if [ -z "${STUB_INSTALLER_CORRUPT:-}" ] && tail -c 17 "$0" | grep -q STUB_PAYLOAD_END; then
    echo "Verifying archive integrity...  100%   MD5 checksums are OK. All good."
    exit 0
  fi
  echo "Error in MD5 checksums: the archive is corrupt (stub, $filesizes bytes declared)" >&2
  exit 2
fi
[ "${1:-}" = "--" ] && shift
batch=no token="" cloud=EU host="" mode=""
while [ $# -gt 0 ]; do
  case "$1" in
    -b|--batch) batch=yes; shift ;;
    -t|--token) token=$2; shift 2 ;;
    -c|--cloud) cloud=$2; shift 2 ;;
    -H|--host) host=$2; shift 2 ;;
    postanalytics|filtering) mode=$1; shift ;;
    *) echo "ERROR: unknown argument $1" >&2; exit 1 ;;
  esac
done
record "installer batch=$batch mode=${mode:-both} cloud=$cloud host=${host:-default} labels=${WALLARM_LABELS:-none} token=$( [ -n "$token" ] && echo given || echo missing)"
echo "Wallarm installer (stub) starting: mode ${mode:-both}, token $token"
[ -z "${STUB_INSTALLER_SAY:-}" ] || echo "$STUB_INSTALLER_SAY"
[ "$batch" = yes ] || { echo "ERROR: interactive mode needs a terminal" >&2; exit 1; }
case "$token" in ""|invalid*) echo "ERROR: failed to register the node: token $token is invalid (HTTP 401)" >&2; exit 1 ;; esac
[ -n "$mode" ] || { echo "ERROR: this stub knows postanalytics and filtering only" >&2; exit 1; }
r=${WALLARM_ROOT:?}
mkdir -p "$r/opt/wallarm/etc/wallarm" "$r/opt/wallarm/var/log/wallarm"
cat >"$r/opt/wallarm/etc/wallarm/node.yaml" <<YAML
hostname: stub-$mode
api:
  uuid: 0b5d9a3e-0000-4000-8000-000000000001
  secret: stub-node-secret
  host: api.wallarm.com
  port: 443
YAML
if [ "$mode" = postanalytics ]; then
  mkdir -p "$r/opt/wallarm/wstore"
  printf '# Wallarm node environment\nSLAB_ALLOC_ARENA=1.0\nWALLARM_WSTORE__LOGGING__LEVEL=info\n' >"$r/opt/wallarm/env.list"
  cat >"$r/opt/wallarm/wstore/wstore.yaml" <<YAML
# wstore settings (stub of the shipped file)
service:
  address: 0.0.0.0:3313
  protocol: tcp
  TLS:
    enabled: false
metrics:
  enabled: true
  listenAddress: localhost:9001
logging:
  level: info
  format: text
arena:
  blocks: 4096
YAML
  printf 'wstore:\n  host: 0.0.0.0\n  port: 3313\n' >>"$r/opt/wallarm/etc/wallarm/node.yaml"
else
  [ -x "$r/usr/sbin/nginx" ] || { echo "ERROR: NGINX is not installed; install it first" >&2; exit 1; }
  mkdir -p "$r/etc/nginx/conf.d"
  printf 'server {\n    listen 127.0.0.8:80;\n    location /wallarm-status {\n        wallarm_status on;\n    }\n}\n' \
    >"$r/etc/nginx/conf.d/wallarm-status.conf"
  # The installer leaves the upstream directive commented in nginx.conf.
  sed -i 's|^http {$|http {\n    # wallarm_wstore_upstream wallarm_wstore;|' "$r/etc/nginx/nginx.conf"
fi
echo "Installation finished (stub)"
exit 0
