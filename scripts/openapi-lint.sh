#!/usr/bin/env bash
# Lints docs/openapi.json with three OpenAPI linters, each pinned and installed from its
# registry into a cache directory (reused while the pins do not change):
#   openapi-spec-validator (PyPI)        the OpenAPI 3.1 schema and its JSON Schema dialect
#   @stoplight/spectral-cli (npm)        .spectral.yaml: spectral:oas, no errors allowed
#   @redocly/cli (npm)                   redocly.yaml: recommended, no errors allowed
# Warnings are printed; any error fails the script. With a binary, it first checks that
# the document that binary prints (`uplift openapi`) is the committed one.
# Usage: scripts/openapi-lint.sh [path/to/uplift]
set -euo pipefail

OPENAPI_SPEC_VALIDATOR=0.9.0
SPECTRAL=6.16.3
REDOCLY=2.77.0

repo=$(cd "$(dirname "$0")/.." && pwd)
doc=$repo/docs/openapi.json
if [ -n "${1:-}" ]; then
  if ! "$1" openapi | diff -q - "$doc" >/dev/null; then
    echo "openapi-lint: $1 prints another document than docs/openapi.json: run \`$1 openapi > docs/openapi.json\`" >&2
    exit 1
  fi
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/uplift-ci
mkdir -p "$cache"

venv=$cache/lint-venv-osv-$OPENAPI_SPEC_VALIDATOR
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR"
fi
npm_dir=$cache/lint-npm-spectral-$SPECTRAL-redocly-$REDOCLY
if [ ! -x "$npm_dir/node_modules/.bin/spectral" ] || [ ! -x "$npm_dir/node_modules/.bin/redocly" ]; then
  rm -rf "$npm_dir"
  npm install --silent --no-audit --no-fund --no-save --prefix "$npm_dir" \
    "@stoplight/spectral-cli@$SPECTRAL" "@redocly/cli@$REDOCLY" >/dev/null
fi

# Nothing here needs the network once installed: no telemetry, no update checks.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

failed=0
echo "--- openapi-spec-validator $OPENAPI_SPEC_VALIDATOR"
"$venv/bin/openapi-spec-validator" "$doc" || failed=1

echo "--- spectral $SPECTRAL (.spectral.yaml)"
# --fail-severity error: warnings are shown but only errors fail.
"$npm_dir/node_modules/.bin/spectral" lint --fail-severity error \
  --ruleset "$repo/.spectral.yaml" "$doc" || failed=1

echo "--- redocly $REDOCLY (redocly.yaml)"
status=0
out=$(cd "$repo" && "$npm_dir/node_modules/.bin/redocly" lint --format stylish \
  --config "$repo/redocly.yaml" "$doc" 2>&1) || status=$?
# Less its boxed notice that the Node.js in use is nearing its end of support.
printf '%s\n' "$out" | grep -v '[║╔╚]' || true
[ "$status" = 0 ] || failed=1

if [ "$failed" != 0 ]; then
  echo "openapi-lint: $doc has errors (above)" >&2
  exit 1
fi
echo "openapi-lint: $doc passes openapi-spec-validator, spectral and redocly"
