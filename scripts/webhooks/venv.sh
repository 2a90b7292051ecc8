#!/usr/bin/env bash
# Prints the path of a virtualenv under target/ holding the pinned Standard Webhooks
# reference library (requirements.txt), creating it on first use. Shared by
# scripts/webhooks/run.sh and scripts/chaos.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
pins=$(sha256sum "$here/requirements.txt" | cut -c1-16)
venv=$repo/target/webhooks-venv-$pins
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  touch "$venv/.installed"
fi
echo "$venv"
