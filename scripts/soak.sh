#!/usr/bin/env bash
# Soak: two uplift replicas on one PostgreSQL database under many clients for the
# given time, then the invariants from the database. Usage: scripts/soak.sh 30s|5m [CLIENTS] [path/to/uplift]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
duration=${1:-30s}
case "$duration" in
  *m) seconds=$(( ${duration%m} * 60 )) ;;
  *s) seconds=${duration%s} ;;
  *) seconds=$duration ;;
esac
exec python3 "$repo/scripts/reliability/soak.py" "$(realpath "${3:-$repo/target/debug/uplift}")" "$seconds" "${2:-16}"
