#!/usr/bin/env bash
# Opens /docs in headless Chromium (Debian's package, installed when missing) against a
# fresh server and fails unless Swagger UI rendered the operations list.
# Usage: scripts/docs-browser-check.sh [path/to/uplift]
set -euo pipefail

source "$(dirname "$0")/lib/server.sh"
uplift_script_binary "${1:-}"
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
serve_from_scratch "$uplift"

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
