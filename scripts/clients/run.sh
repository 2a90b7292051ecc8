#!/usr/bin/env bash
# Real clients nobody on this project wrote, against a fresh `uplift serve` on 127.0.0.1
# with a seeded tenant, folder and client application (docs/compatibility.md):
#   uipath_sdk.py         UiPath's Python SDK: its IdentityService token, its request API
#   generated_client.py   a client generated now by openapi-python-client from the served
#                         /openapi.json, every answer checked against the document
#   authlib_client.py     Authlib: client_secret_basic, client_secret_post, re-fetch on expiry
# Each is installed from PyPI at the version pinned in requirements.txt (plus
# constraints.txt for what they pull in) into a virtualenv under the cache directory,
# reused while those files do not change. Each driver refuses any connection or name
# lookup other than 127.0.0.1 (common.py). Usage: scripts/clients/run.sh [path/to/uplift]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/server.sh"
uplift_script_binary "${1:-}"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/uplift-ci
pins=$(cat "$here/requirements.txt" "$here/constraints.txt" | sha256sum | cut -c1-16)
venv=$cache/clients-venv-$pins
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt" -c "$here/constraints.txt"
  touch "$venv/.installed"
fi
python=$venv/bin/python
export PYTHONDONTWRITEBYTECODE=1

serve_from_scratch "$uplift"
export UPLIFT_LISTEN=127.0.0.1:$port

export UPLIFT_BASE=$uplift_base UPLIFT_ORG=local UPLIFT_TENANT=clients-tenant
export UPLIFT_SCOPE="Apps Apps.Read OR.Folders.Read"
UPLIFT_FOLDER_KEY=$("$uplift" folder create --tenant "$UPLIFT_TENANT" --name Clients)
UPLIFT_FOLDER_ID=$("$uplift" folder list --tenant "$UPLIFT_TENANT" |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["id"])')
client=$("$uplift" client create --tenant "$UPLIFT_TENANT" --name real-clients \
  --scope "$UPLIFT_SCOPE OR.Execution")
UPLIFT_CLIENT_ID=$(echo "$client" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
UPLIFT_CLIENT_SECRET=$(echo "$client" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
"$uplift" role assign --tenant "$UPLIFT_TENANT" --subject "$UPLIFT_CLIENT_ID" --role Administrator >/dev/null
export UPLIFT_FOLDER_KEY UPLIFT_FOLDER_ID UPLIFT_CLIENT_ID UPLIFT_CLIENT_SECRET

failed=()
for driver in uipath_sdk generated_client authlib_client; do
  started=$SECONDS
  if (cd "$work" && "$python" "$here/$driver.py"); then
    echo "<-- $driver: $((SECONDS - started)) s"
  else
    failed+=("$driver")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "clients: failed: ${failed[*]}; last lines of the server log:" >&2
  tail -30 "$work/server.log" >&2
  exit 1
fi
echo "clients: UiPath's SDK, the generated client and Authlib all pass"
