#!/usr/bin/env bash
# Schemathesis (from PyPI) against /openapi.json of a fresh, seeded server, with an
# administrator token and the demo tenant and folder: no 5xx, and every answer must
# match its documented status code, content type and schema. Every operation of the
# document is run, the operations, rollouts and webhooks routes included: an
# operation, a rollout and a webhook endpoint with a delivery are created first
# (scripts/fuzz-fixtures.py) and their ids given as the path parameters, so those
# routes' handlers see real resources.
# Usage: scripts/fuzz.sh [max-examples per operation] [path/to/uplift] [schemathesis options...]
# (the long form: scripts/fuzz.sh 1000; CI runs a bounded one)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
examples=${1:-25}
uplift=$(realpath "${2:-$repo/target/debug/uplift}")
shift $(($# < 2 ? $# : 2))
source "$repo/scripts/lib/server.sh"
work=$(mktemp -d)
uplift_cleanup_on_exit "$work"

venv=${UPLIFT_FUZZ_VENV:-$HOME/.cache/uplift-schemathesis}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis>=4,<5"
fi

cd "$work"
# The fixture endpoint is http://127.0.0.1:9 (nothing listens), allowed here only.
start_uplift "$uplift" server.log UPLIFT_WEBHOOK_ALLOW_HTTP=true UPLIFT_WEBHOOK_ALLOW_NETWORKS=127.0.0.1/32
port=$uplift_port
export UPLIFT_LISTEN=127.0.0.1:$port
"$uplift" seed --demo >demo.json
python3 "$repo/scripts/fuzz-fixtures.py" demo.json >schemathesis.toml
field() { python3 -c "import json,sys; d=json.load(open('demo.json')); print(eval(sys.argv[1]))" "$1"; }

"$venv/bin/schemathesis" --config-file schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer $(field "d['tokens']['administrator']")" \
  -H "X-UiPath-Internal-TenantId: $(field "d['tenantId']")" \
  -H "X-UiPath-FolderKey: $(field "d['folders']['operations']['key']")" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing --max-examples "$examples" --no-shrink --warnings off "$@" \
  || { echo "fuzz: schemathesis found failures; server log:" >&2; tail -30 server.log >&2; exit 1; }
if grep -q ' ERROR ' server.log; then
  echo "fuzz: the server logged errors:" >&2; grep ' ERROR ' server.log | head -20 >&2; exit 1
fi
