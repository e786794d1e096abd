"""An `mlflow server` the test itself stops and restarts (the session's `mlflow_server` fixture
outlives every test): started by mlflow/server.sh, stopped by SIGKILL to its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parents[2]


def start_server(root: Path, port: int, timeout_s: float = 120.0, extra_env: Mapping[str, str] | None = None) -> int:
    """Start a server on 127.0.0.1:``port`` with its SQLite backend and artifacts in ``root``
    (the same ones on every start; ``extra_env`` may point the artifacts elsewhere, e.g. at an
    S3 bucket); returns its PID once ``/health`` answers."""
    env = {**os.environ, "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1",
           "MLFLOW_SERVER_DIR": str(root), "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root}/mlflow.db",
           "MLFLOW_ARTIFACTS_DESTINATION": str(root / "artifacts"), "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow")),
           **(extra_env or {})}
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(REPO_ROOT / "mlflow" / "server.sh")], env=env, cwd=root, check=True, capture_output=True)
    pid = int((root / "server.pid").read_text())
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return pid
        except OSError:
            pass
        if time.monotonic() > deadline:
            kill_server(pid, port)
            raise RuntimeError(f"mlflow server on port {port} did not answer within {timeout_s} s: "
                               + (root / "server.log").read_text(errors="replace")[-2000:])
        time.sleep(0.3)


def kill_server(pid: int, port: int) -> None:
    """SIGKILL the server's process group (server.sh starts it with setsid); returns once its
    port refuses connections."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0 and not _alive(pid):
                return
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, killed but not yet reaped by init, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
