"""A local Ray head for tests whose Ray workers need an environment the test process did not have
when the session's in-process Ray started (e.g. the AWS variables of the test S3 server: Ray
workers read S3 with their own credentials, which are never pickled with a filesystem).

``ray start --head --block`` runs in a session of its own, on free 127.0.0.1-side ports, with a
short private temp dir and token authentication; :meth:`RayHead.stop` ends exactly that session's
processes (:func:`dgnode.cluster.local.stop_session`), never another Ray on the machine. Drivers
join it as subprocesses with :meth:`RayHead.driver_env`; :meth:`RayHead.processes` lists the
session's processes whose command line matches, so a test can kill one Ray worker by PID.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from dgnode.cluster.local import _cmdline, _free_port, session_processes, stop_session


class RayHead:
    def __init__(self, env: Mapping[str, str], num_cpus: int = 4) -> None:
        self.extra_env = dict(env)
        self.num_cpus = num_cpus
        self.token = secrets.token_hex(16)
        self.address: str | None = None
        self.temp_dir: Path | None = None
        self.process: subprocess.Popen | None = None

    def driver_env(self) -> dict[str, str]:
        """The environment of a driver subprocess joining this head (with the extra variables)."""
        assert self.address is not None, "start() first"
        return {**os.environ, **self.extra_env, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": self.token}

    def start(self, timeout_s: float = 180.0) -> str:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="dgray-", dir="/tmp"))  # Ray's sockets: keep it short
        port = _free_port()
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                   "--node-ip-address=127.0.0.1", f"--port={port}", f"--ray-client-server-port={_free_port()}",
                   f"--dashboard-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
                   "--dashboard-host=127.0.0.1", f"--temp-dir={self.temp_dir / 'ray'}", f"--num-cpus={self.num_cpus}",
                   "--num-gpus=0", f"--object-store-memory={200 * 1024**2}", "--disable-usage-stats"]
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(self.extra_env, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        log_path = self.temp_dir / "head.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"ray start exited with {self.process.returncode}: {tail}")
            if b"Ray runtime started" in log_path.read_bytes():
                self.address = f"127.0.0.1:{port}"
                return self.address
            time.sleep(0.25)
        tail = log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"ray start did not come up within {timeout_s:.0f} s: {tail}")

    def processes(self, marker: str) -> list[int]:
        """PIDs of this head's processes whose command line contains ``marker`` (e.g. a Ray
        worker's process title such as ``ray::ImplicitFunc``)."""
        if self.process is None:
            return []
        return [pid for pid in session_processes(self.process.pid) if marker in _cmdline(pid)]

    def log_text(self, pattern: str = "*") -> str:
        """The text of this head's Ray session logs matching ``pattern`` (for assertions on what
        Ray's controllers decided)."""
        if self.temp_dir is None:
            return ""
        return "\n".join(path.read_text(errors="replace")
                         for path in sorted((self.temp_dir / "ray").glob(f"session_*/logs/{pattern}")) if path.is_file())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_session(self.process.pid)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
