# Shared by the bash scripts that drive a real `uplift serve` (source it, do not run it).
# It exists so that a server that never becomes ready stops the script at once, with
# the server's log, instead of the script carrying on against a dead port.
#
#   source "$repo/scripts/lib/server.sh"
#   work=$(mktemp -d)
#   uplift_cleanup_on_exit "$work"              # EXIT trap: stop servers, remove $work
#   cd "$work"
#   start_uplift "$uplift" server.log [VAR=value ...]
#   port=$uplift_port                           # also $uplift_pid, $uplift_base
#
# start_uplift sets globals, so call it directly, never inside $(...).
# UPLIFT_READY_TIMEOUT (seconds, default 30) bounds the wait for GET /readyz == 200.

_uplift_pids=()
_uplift_cleanup_paths=()

# A port nothing listens on right now (the kernel's pick, released at once).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Kills every server start_uplift started, waits for them to exit, removes the paths
# given to uplift_cleanup_on_exit. Safe to call more than once.
uplift_cleanup() {
  local pid
  for pid in "${_uplift_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${_uplift_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  _uplift_pids=()
  if [ ${#_uplift_cleanup_paths[@]} -gt 0 ]; then rm -rf "${_uplift_cleanup_paths[@]}"; fi
  _uplift_cleanup_paths=()
}

# Installs uplift_cleanup as the EXIT trap (the script's exit status is kept) and adds
# the given paths to what it removes.
uplift_cleanup_on_exit() {
  _uplift_cleanup_paths+=("$@")
  trap uplift_cleanup EXIT
}

# uplift_script_binary [PATH]: the binary a script was given (default: the debug
# build), as an absolute path; sets repo and uplift.
uplift_script_binary() {
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  uplift=$(realpath "${1:-$repo/target/debug/uplift}")
}

# serve_from_scratch BINARY [VAR=value ...]: a fresh scratch directory (removed on
# exit) as the working directory, and BINARY serving from it (log: server.log). Sets
# work and port, besides what start_uplift sets.
serve_from_scratch() {
  work=$(mktemp -d)
  uplift_cleanup_on_exit "$work"
  cd "$work"
  local binary=$1
  shift
  start_uplift "$binary" server.log "$@"
  port=$uplift_port
}

# start_uplift BINARY LOGFILE [VAR=value ...]
# Starts `BINARY serve` in the background on UPLIFT_LISTEN=127.0.0.1:<free port>, with
# the extra environment given, stdout and stderr to LOGFILE, and returns once
# GET /readyz answers 200. Sets uplift_port, uplift_pid and uplift_base. If the process
# exits first or the timeout passes, prints why and the last 40 lines of LOGFILE to
# stderr and exits the script with status 1.
start_uplift() {
  local binary=$1 log=$2
  shift 2
  local timeout=${UPLIFT_READY_TIMEOUT:-30}
  uplift_port=$(free_port)
  uplift_base="http://127.0.0.1:$uplift_port"
  # Whatever already accepts connections there would answer /readyz in our server's place.
  if (exec 3<>"/dev/tcp/127.0.0.1/$uplift_port") 2>/dev/null; then
    echo "start_uplift: 127.0.0.1:$uplift_port is already in use; not starting $binary serve" >&2
    exit 1
  fi
  # UPLIFT_LISTEN last: the port probed below must be the one it listens on.
  env "$@" UPLIFT_LISTEN="127.0.0.1:$uplift_port" "$binary" serve >"$log" 2>&1 &
  uplift_pid=$!
  _uplift_pids+=("$uplift_pid")

  local deadline=$((SECONDS + timeout)) status="" rc=0 why=""
  while :; do
    # Checked before and after the probe too, so that an answer while our process has
    # already died (it lost the port to another) does not count.
    if ! kill -0 "$uplift_pid" 2>/dev/null; then
      wait "$uplift_pid" 2>/dev/null || rc=$?
      why="exited with status $rc before GET /readyz answered 200"
      break
    fi
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$uplift_base/readyz" || true)
    if [ "$status" = 200 ] && kill -0 "$uplift_pid" 2>/dev/null; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      why="did not answer GET /readyz with 200 within ${timeout} s (last answer: ${status:-none})"
      kill "$uplift_pid" 2>/dev/null || true
      wait "$uplift_pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  {
    echo "start_uplift: $binary serve on 127.0.0.1:$uplift_port $why"
    echo "--- last 40 lines of $log ---"
    tail -n 40 "$log" 2>/dev/null || true
    echo "---"
  } >&2
  exit 1
}
