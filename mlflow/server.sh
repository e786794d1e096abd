#!/usr/bin/env bash
# Start an MLflow tracking server in the background and write its PID file.
#
# Local default: SQLite backend + local artifact directory, bound to 127.0.0.1.
# Cluster (cluster.yaml's head): SQLite (or PostgreSQL) on the head, artifacts in S3
# (MLFLOW_ARTIFACTS_DESTINATION=s3://...), bound to 127.0.0.1 or the head's private address, never
# to every interface; see mlflow/README.md. Nothing secret lives in this repository.
#
# The server proxies artifacts (--serve-artifacts): clients upload and download them through it,
# so only the server needs S3 credentials (from the AWS environment, a profile or the instance's
# IAM role, read by boto3); clients need only MLFLOW_TRACKING_URI.
#
# Environment (all optional):
#   MLFLOW_HOST                    interface to bind            (default 127.0.0.1; 0.0.0.0/:: refused)
#   MLFLOW_PORT                    port                         (default 5000)
#   MLFLOW_WORKERS                 uvicorn worker processes     (default 2)
#   MLFLOW_SERVER_DIR              PID file, log, default stores (default ./mlruns)
#   MLFLOW_BACKEND_STORE_URI       runs/params/metrics store    (default sqlite:///$PWD/mlflow.db)
#   MLFLOW_REGISTRY_STORE_URI      model registry store         (default: the backend store)
#   MLFLOW_ARTIFACTS_DESTINATION   where proxied artifacts go   (default $PWD/mlartifacts)
#   MLFLOW_ALLOWED_HOSTS           Host headers to accept when binding beyond localhost
#   MLFLOW_SERVER_EXTRA_ARGS       further `mlflow server` flags, word-split
#   MLFLOW_BIN                     the mlflow executable        (default: .venv/bin/mlflow, else PATH)
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION
#                                  read by boto3 when MLFLOW_ARTIFACTS_DESTINATION is s3://...
#                                  (on AWS leave them unset: the instance profile is used)
#   MLFLOW_S3_ENDPOINT_URL         a non-AWS S3 endpoint (default: AWS_ENDPOINT_URL_S3, else
#                                  AWS_ENDPOINT_URL, else AWS itself)
#
# Usage: mlflow/server.sh            start; prints the URL and the PID file, returns at once
#        mlflow/stop.sh              stop the server named by the PID file
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
workers="${MLFLOW_WORKERS:-2}"
server_dir="${MLFLOW_SERVER_DIR:-$PWD/mlruns}"
backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$PWD/mlflow.db}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$PWD/mlartifacts}"
pid_file="$server_dir/server.pid"
log_file="$server_dir/server.log"

if [[ -n "${MLFLOW_BIN:-}" ]]; then
  mlflow_bin="$MLFLOW_BIN"
elif [[ -x "$repo_root/.venv/bin/mlflow" ]]; then
  mlflow_bin="$repo_root/.venv/bin/mlflow"
else
  mlflow_bin="$(command -v mlflow || true)"
fi
if [[ -z "$mlflow_bin" || ! -x "$mlflow_bin" ]]; then
  echo "mlflow/server.sh: error: no mlflow executable (set MLFLOW_BIN or create .venv)" >&2
  exit 2
fi
if ! [[ "$port" =~ ^[0-9]+$ ]] || (( port < 1 || port > 65535 )); then
  echo "mlflow/server.sh: error: MLFLOW_PORT must be a port number 1-65535, got '$port'" >&2
  exit 2
fi
case "$host" in
  0.0.0.0 | :: | "[::]" | "*" | "")
    echo "mlflow/server.sh: error: MLFLOW_HOST='$host' binds every interface, public ones included; bind 127.0.0.1" \
         "(reach it through SSH port forwarding) or the node's private address" >&2
    exit 2;;
esac

mkdir -p "$server_dir"
if [[ -f "$pid_file" ]]; then
  old_pid="$(cat "$pid_file")"
  # A killed server not yet reaped by init is a zombie: kill -0 still succeeds on it, but it
  # holds no port and will never answer, so it does not count as running.
  if [[ "$old_pid" =~ ^[0-9]+$ ]] && kill -0 "$old_pid" 2>/dev/null \
      && [[ "$(ps -o stat= -p "$old_pid" 2>/dev/null)" != Z* ]]; then
    echo "mlflow/server.sh: error: a server is already running with PID $old_pid ($pid_file); run mlflow/stop.sh first" >&2
    exit 2
  fi
  rm -f "$pid_file"  # stale: its process is gone
fi
# A local artifact destination must exist; remote ones (s3://, gs://, ...) are the store's business.
if [[ "$artifacts" != *://* ]]; then
  mkdir -p "$artifacts"
fi
# MLflow's S3 client takes a non-AWS endpoint from MLFLOW_S3_ENDPOINT_URL; default it from the
# standard AWS variables, so one AWS_ENDPOINT_URL serves dgnode, Ray and the server alike.
if [[ "$artifacts" == s3://* && -z "${MLFLOW_S3_ENDPOINT_URL:-}" ]]; then
  endpoint="${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}"
  if [[ -n "$endpoint" ]]; then
    export MLFLOW_S3_ENDPOINT_URL="$endpoint"
  fi
fi

args=(server --host "$host" --port "$port" --workers "$workers"
      --backend-store-uri "$backend" --serve-artifacts --artifacts-destination "$artifacts")
if [[ -n "${MLFLOW_REGISTRY_STORE_URI:-}" ]]; then
  args+=(--registry-store-uri "$MLFLOW_REGISTRY_STORE_URI")
fi
if [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]]; then
  args+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi
if [[ -n "${MLFLOW_SERVER_EXTRA_ARGS:-}" ]]; then
  read -r -a extra <<<"$MLFLOW_SERVER_EXTRA_ARGS"
  args+=("${extra[@]}")
fi

# The server's background job runner (GenAI evaluation jobs) is not used by dgnode and costs
# start-up time and a process per server; opt back in with MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

# setsid: the server leads its own process group, so stop.sh can end it together with the
# uvicorn workers it forks (and nothing else) by that one PID.
setsid "$mlflow_bin" "${args[@]}" >>"$log_file" 2>&1 </dev/null &
server_pid=$!
echo "$server_pid" >"$pid_file"
echo "mlflow server starting: http://$host:$port (PID $server_pid, PID file $pid_file, log $log_file)"
echo "backend store: ${backend%%://*}://...  artifacts: $artifacts${MLFLOW_S3_ENDPOINT_URL:+ (S3 endpoint $MLFLOW_S3_ENDPOINT_URL)}"
