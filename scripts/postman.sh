#!/usr/bin/env bash
# Runs the Postman collection with newman (from the npm registry) against a fresh
# server: registers a client application, grants it a role, and passes ids and
# secrets as environment variables. Usage: scripts/postman.sh [path/to/uplift]
set -euo pipefail

source "$(dirname "$0")/lib/server.sh"
uplift_script_binary "${1:-}"
work=$(mktemp -d)
uplift_cleanup_on_exit "$work"

newman=$(command -v newman || true)
if [ -z "$newman" ]; then
  npm install --silent --no-audit --no-fund --prefix "$work/npm" newman@6 >/dev/null
  newman="$work/npm/node_modules/.bin/newman"
fi

cd "$work"
start_uplift "$uplift" server.log
port=$uplift_port
export UPLIFT_LISTEN=127.0.0.1:$port

tenant=postman-tenant
folder_key=$("$uplift" folder create --tenant $tenant --name Postman)
folder_id=$("$uplift" folder list --tenant $tenant | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
client=$("$uplift" client create --tenant $tenant --name postman --scope "Apps Apps.Read OR.Folders.Read")
client_id=$(echo "$client" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
client_secret=$(echo "$client" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
"$uplift" role assign --tenant $tenant --subject "$client_id" --role Administrator

"$newman" run "$repo/postman/uplift.postman_collection.json" \
  --environment "$repo/postman/local.postman_environment.json" \
  --env-var "baseUrl=http://127.0.0.1:$port/local/apps_/default/api/v1/default" \
  --env-var "identityUrl=http://127.0.0.1:$port/identity_" \
  --env-var "rainbondUrl=http://127.0.0.1:$port/openapi/v1" \
  --env-var "serverUrl=http://127.0.0.1:$port" \
  --env-var "tenantId=$tenant" --env-var "folderKey=$folder_key" --env-var "appId=$folder_id" \
  --env-var "clientId=$client_id" --env-var "clientSecret=$client_secret" \
  --bail --color off || { echo "postman: newman failed; server log:" >&2; tail -40 server.log >&2; exit 1; }
