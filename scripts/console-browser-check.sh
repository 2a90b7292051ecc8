#!/usr/bin/env bash
# Drives the operator console (/console/) in Debian's headless Chromium with Playwright
# for Python, against a fresh server on a fresh SQLite database seeded by
# `uplift seed --demo`: sign-in, the fleet's out-of-date count, preview, upgrade and its
# progress, history and rollback, a hostile title, a viewer's disabled Upgrade, and
# axe-core on every view (scripts/console/browser_check.py says what is checked).
# Screenshots of every view go to target/console-check/shots/; with
# CONSOLE_SCREENSHOT=path the fleet view at 1280 px is also saved there (docs/console.png).
# Installs what it needs: chromium (apt) when missing, Playwright (PyPI, pinned) into a
# venv and axe-core (npm, pinned) under target/console-check/. Never `playwright
# install`: the browser is the system's.
# Usage: scripts/console-browser-check.sh [path/to/uplift]
set -euo pipefail

PLAYWRIGHT=1.65.2
AXE_CORE=4.14.1

source "$(dirname "$0")/lib/server.sh"
uplift_script_binary "${1:-}"
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
tools=$repo/target/console-check
venv=$tools/venv-playwright-$PLAYWRIGHT
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT"
fi
axe=$tools/axe-core-$AXE_CORE/node_modules/axe-core/axe.min.js
if [ ! -f "$axe" ]; then
  npm install --silent --no-audit --no-fund --prefix "$tools/axe-core-$AXE_CORE" "axe-core@$AXE_CORE" >/dev/null
fi
shots=$tools/shots
rm -rf "$shots"
mkdir -p "$shots"

screenshot=${CONSOLE_SCREENSHOT:+$(realpath -m "$CONSOLE_SCREENSHOT")}
# One signing secret for the server and the seeders, so the volume seed's token is good.
export UPLIFT_JWT_SECRET="console-check-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
serve_from_scratch "$uplift"
"$uplift" seed --demo >demo.json 2>seed.log || { cat seed.log >&2; exit 1; }
# A second tenant with one folder of many deployments: paging, and an operation long
# enough to cancel.
"$uplift" seed --deployments 3000 >volume.json 2>>seed.log || { cat seed.log >&2; exit 1; }
tenant=$(python3 -c 'import json,sys; print(json.load(open("demo.json"))["tenantId"])')
payroll=$(python3 -c 'import json,sys; print(json.load(open("demo.json"))["folders"]["payroll"]["key"])')
"$uplift" client create --tenant "$tenant" --name console-admin --scope "Apps OR.Folders.Read" >admin.json 2>>seed.log
"$uplift" client create --tenant "$tenant" --name console-viewer --scope "Apps OR.Folders.Read" >viewer.json 2>>seed.log
admin_id=$(python3 -c 'import json; print(json.load(open("admin.json"))["client_id"])')
viewer_id=$(python3 -c 'import json; print(json.load(open("viewer.json"))["client_id"])')
"$uplift" role assign --tenant "$tenant" --subject "$admin_id" --role Administrator >/dev/null 2>>seed.log
"$uplift" role assign --tenant "$tenant" --subject "$viewer_id" --role AutomationUser --folder "$payroll" >/dev/null 2>>seed.log

timeout 300 "$venv/bin/python" "$repo/scripts/console/browser_check.py" \
  --base "http://127.0.0.1:$port" --demo demo.json --volume volume.json --admin admin.json --viewer viewer.json \
  --axe "$axe" --shots "$shots" ${screenshot:+--screenshot "$screenshot"} \
  || { echo "--- server log (last 30 lines) ---" >&2; tail -30 server.log >&2; exit 1; }
