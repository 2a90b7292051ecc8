#!/usr/bin/env bash
# Opens /docs in headless Chromium (Debian's package, installed when missing) against a
# fresh server and fails unless Swagger UI rendered the operations list.
# Usage: scripts/docs-browser-check.sh [path/to/uplift]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
uplift=$(realpath "${1:-$repo/target/debug/uplift}")
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { [ -n "${server:-}" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
UPLIFT_LISTEN=127.0.0.1:$port "$uplift" serve >server.log 2>&1 &
server=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

# The flags keep Chromium off the network it cannot reach here.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --virtual-time-budget=15000 \
  --dump-dom "http://127.0.0.1:$port/docs/" >dom.html 2>chromium.log || true

operations=$(grep -o 'class="opblock opblock-[a-z]*' dom.html | wc -l)
if [ "$operations" -lt 10 ] || ! grep -q 'updateToLatestAppVersionBulk' dom.html; then
  echo "docs-browser-check: the docs page did not render the operations ($operations found)" >&2
  tail -20 chromium.log >&2
  exit 1
fi
echo "docs-browser-check: ok ($operations operations rendered)"
