"""A real ``mlflow server`` for tests and benchmarks, started by the repository's ``mlflow/server.sh``."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running_mlflow_server(root: Path, artifacts: str, env: dict[str, str] | None = None):
    """``mlflow/server.sh`` on a free 127.0.0.1 port: SQLite backend in ``root``, artifacts proxied
    to ``artifacts`` (a directory or ``s3://...``, reached with ``env``'s AWS variables); yields the
    server URL once ``/health`` answers. Stopped by ``mlflow/stop.sh`` (its PID file) on exit, with
    a ``SIGKILL`` to the server's own process group as a fallback, also when the block fails.
    """
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        **(env or {}),
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "2",
        "MLFLOW_SERVER_DIR": str(root),
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root}/mlflow.db",
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts,
        "MLFLOW_BIN": str(Path(sys.executable).with_name("mlflow")),
    }
    subprocess.run([str(REPO_ROOT / "mlflow" / "server.sh")], env=env, cwd=root, check=True, capture_output=True)
    pid = int((root / "server.pid").read_text())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log = (root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mlflow server on {url} did not answer /health within 120 s; log:\n{log}")
            time.sleep(0.3)
        yield url
    finally:
        subprocess.run([str(REPO_ROOT / "mlflow" / "stop.sh")], env=env, cwd=root, capture_output=True, timeout=60)
        try:
            os.killpg(pid, signal.SIGKILL)  # only if stop.sh failed: the group is gone otherwise
        except (ProcessLookupError, PermissionError):
            pass
