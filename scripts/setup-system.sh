#!/usr/bin/env bash
# Installs the servers the harness is verified against: Redis 7.0 (Debian), Valkey 8.0
# (bookworm-backports) and the tools CI needs (stress-ng: the CPU hog of `soak --cpu-hog`;
# chromium and its driver: the test that opens the HTML report in a headless browser).
# Idempotent; needs root (or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v valkey-server >/dev/null || need+=(valkey-server)
command -v stress-ng >/dev/null || need+=(stress-ng)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
[ ${#need[@]} = 0 ] && exit 0

# bookworm-backports carries valkey-server; reuse the mirror the machine already uses.
src=/etc/apt/sources.list.d/debian.sources
bp=/etc/apt/sources.list.d/harness-backports.sources
if [ ! -f "$bp" ]; then
  uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$src" 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [ -n "$uri" ] || { echo "setup: cannot find the Debian mirror in $src; add bookworm-backports by hand" >&2; exit 1; }
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" | $SUDO tee "$bp" >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools stress-ng \
  chromium chromium-driver >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports valkey-server >/dev/null
# The packages start system-wide daemons on 6379; the harness starts its own nodes.
for s in redis-server valkey-server; do
  $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
  $SUDO service "$s" stop >/dev/null 2>&1 || true
done
