#!/usr/bin/env bash
# Makes sure `wg` (wireguard-tools) and `wireguard-go` are installed; the testbed and its
# tests need both. Idempotent and quiet: prints nothing when they are already there.
# --no-install-recommends: wireguard-tools recommends a kernel image and more we never use.
set -euo pipefail
missing=()
command -v wg >/dev/null 2>&1 || missing+=(wireguard-tools)
command -v wireguard-go >/dev/null 2>&1 || missing+=(wireguard-go)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "ensure_wireguard: ${missing[*]} missing; install as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "ensure_wireguard: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
