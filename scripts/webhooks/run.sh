#!/usr/bin/env bash
# Webhooks end to end with the real binary (docs/webhooks.md): two replicas on one
# PostgreSQL database deliver every event to a receiver on 127.0.0.1 that verifies each
# signature with the Standard Webhooks reference library (PyPI `standardwebhooks`,
# pinned in requirements.txt, installed into a virtualenv under target/), then a replica
# is killed with SIGKILL in the middle of a delivery and the survivor redelivers it
# with the same webhook-id. Usage: scripts/webhooks/run.sh [path/to/uplift] [DEPLOYMENTS]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
uplift=${1:-$repo/target/debug/uplift}
count=${2:-500}
venv=$("$here/venv.sh")
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$here/verify.py" "$uplift" "$count"
