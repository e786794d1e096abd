#!/usr/bin/env bash
# Stop the MLflow server started by mlflow/server.sh, by the PID in its PID file.
#
# The server was started with setsid, so its PID is also its process group id: the group is
# signalled (TERM, then KILL after MLFLOW_STOP_TIMEOUT seconds, default 15) so its uvicorn
# workers end with it. Only that process group is touched.
#
# Environment: MLFLOW_SERVER_DIR (default ./mlruns), as for server.sh.
set -euo pipefail

server_dir="${MLFLOW_SERVER_DIR:-$PWD/mlruns}"
pid_file="$server_dir/server.pid"
timeout="${MLFLOW_STOP_TIMEOUT:-15}"

if [[ ! -f "$pid_file" ]]; then
  echo "mlflow/stop.sh: no PID file at $pid_file: nothing to stop" >&2
  exit 0
fi
pid="$(cat "$pid_file")"
if ! [[ "$pid" =~ ^[0-9]+$ ]]; then
  echo "mlflow/stop.sh: error: $pid_file does not hold a PID (got '$pid')" >&2
  exit 2
fi
# A zombie (killed, not yet reaped by init) is not running either: it has no command line to check.
if ! kill -0 "$pid" 2>/dev/null || [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]]; then
  echo "mlflow/stop.sh: server PID $pid is not running; removing stale $pid_file"
  rm -f "$pid_file"
  exit 0
fi
# Refuse to signal a recycled PID that is no longer our server.
if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "mlflow"; then
  echo "mlflow/stop.sh: error: PID $pid from $pid_file is not an mlflow server; not stopping it" >&2
  exit 2
fi

kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
for ((i = 0; i < timeout * 10; i++)); do
  if ! kill -0 "$pid" 2>/dev/null && ! kill -0 -- "-$pid" 2>/dev/null; then
    rm -f "$pid_file"
    echo "mlflow server (PID $pid) stopped"
    exit 0
  fi
  sleep 0.1
done
kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
rm -f "$pid_file"
echo "mlflow server (PID $pid) did not stop within ${timeout}s: killed"
