#!/usr/bin/env bash
# Follows the README's "Try it" section against a fresh data directory and fails unless
# the bulk call answers 200. Usage: scripts/readme-smoke.sh [path/to/uplift]
set -euo pipefail

uplift=$(realpath "${1:-target/debug/uplift}")
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { [ -n "${server:-}" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
export UPLIFT_LISTEN=127.0.0.1:$port
base=http://127.0.0.1:$port/local/apps_/default/api/v1/default

"$uplift" serve >server.log 2>&1 &
server=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

# --- the README's commands, verbatim apart from the binary path ---
TENANT=my-tenant
FOLDER=$("$uplift" folder create --tenant $TENANT --name Finance)
"$uplift" role assign --tenant $TENANT --subject ci-bot --role FolderAdministrator --folder "$FOLDER"
TOKEN=$("$uplift" token --tenant $TENANT --subject ci-bot --scope "Apps.Write OR.Folders.Read")
status=$(curl -s -o answer.json -w '%{http_code}' -X POST "$base/models/deployed/apps/updateToLatestAppVersionBulk" \
  -H "Authorization: Bearer $TOKEN" \
  -H "X-UiPath-Internal-TenantId: $TENANT" \
  -H "X-UiPath-FolderKey: $FOLDER" \
  -H "Content-Type: application/json" \
  -d '{"deploymentIds": ["3f1c2b1e-0000-4000-8000-000000000001"]}')
# ---

cat answer.json; echo
if [ "$status" != 200 ]; then
  echo "readme-smoke: expected 200 from the bulk call, got $status" >&2
  cat server.log >&2
  exit 1
fi
python3 -c 'import json,sys; a=json.load(open("answer.json")); assert set(a) >= {"updatedDeployments","failedItems"}, a'
echo "readme-smoke: ok"
