#!/usr/bin/env bash
# uplift against the database's own floor; see docs/benchmarks.md.
#   bench/run.sh [--quick] [--large N]
# Builds the release binary (or uses UPLIFT_BENCH_BINARY), installs wrk and sqlite3
# from Debian's packages when missing, starts PostgreSQL when it is down, and runs
# bench/run.py, which prints the table and writes it to target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v pgbench >/dev/null || missing+=(postgresql-contrib)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
# The wait above falls through when PostgreSQL never came up: stop here, not mid-benchmark.
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "bench: PostgreSQL on 127.0.0.1:5432 is not ready" >&2; exit 1; }

binary=${UPLIFT_BENCH_BINARY:-}
if [ -z "$binary" ]; then
  cargo build --release --locked --bin uplift
  binary=target/release/uplift
fi
python3 bench/webhooks.py "$binary" "$@"
exec python3 bench/run.py "$binary" "$@"
