"""Where runs go: resolve the MLflow tracking URI and check it is usable before any training.

Resolution order (:func:`resolve_tracking_uri`):

1. an explicit URI (``--tracking_uri``),
2. the ``MLFLOW_TRACKING_URI`` environment variable,
3. ``sqlite:///<cwd>/mlflow.db``.

Local URIs are made absolute on the driver: Ray workers run in other working directories
(Tune trial directories, a job's unpacked ``--working-dir``), and a relative ``sqlite:///x.db``
would silently give each of them its own database.

:func:`check_tracking_uri` fails fast. MLflow's HTTP client retries a refused connection with
exponential back-off for minutes; a search should instead stop in a second with one line that
names the URI and what to do. :func:`bounded_http_retries` bounds those retries where a
long-running driver must notice a lost server in seconds (a search's MLflow callback), and
:func:`server_unreachable` tells a lost server from an MLflow error.
"""

from __future__ import annotations

import base64
import os
from contextlib import contextmanager
from typing import Iterator, Mapping
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from dgnode.errors import DgnodeError

__all__ = ["DEFAULT_DATABASE", "SEARCH_HTTP_LIMITS", "TrackingUnavailableError", "bounded_http_retries",
           "check_tracking_uri", "resolve_tracking_uri", "server_unreachable"]

DEFAULT_DATABASE = "mlflow.db"
SQLITE_HEADER = b"SQLite format 3\x00"
# MLflow's defaults (7 retries, back-off factor 2, 120 s timeout) keep a client on a lost server
# for minutes. With these a refused call gives up in about 3 s, a hung server in about 35 s.
SEARCH_HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


class TrackingUnavailableError(DgnodeError):
    """The tracking URI cannot be used: server down, directory missing or read-only, not a database."""


def resolve_tracking_uri(explicit: str | None = None, cwd: str | Path | None = None) -> str:
    """The tracking URI to use, with local paths made absolute (see the module docstring)."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    uri = (explicit or "").strip() or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        return "sqlite:///" + str((base / DEFAULT_DATABASE).resolve())
    return _absolute_local_uri(uri, base)


def _absolute_local_uri(uri: str, base: Path) -> str:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db has path "/relative.db"; sqlite:////abs.db has path "//abs.db".
        raw = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else parsed.path
        if raw in ("", ":memory:"):
            return uri
        path = Path(raw)
        return "sqlite:///" + str(path if path.is_absolute() else (base / path).resolve())
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
        return (path if path.is_absolute() else (base / path).resolve()).as_uri()
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return (base / uri).resolve().as_uri()
    return uri


def check_tracking_uri(uri: str, timeout_s: float = 3.0) -> None:
    """Raise :class:`TrackingUnavailableError` unless ``uri`` can take runs right now.

    ``http(s)://``: ``GET /health`` with a ``timeout_s`` timeout; a server without that endpoint
    (a proxy in front of MLflow) is asked ``GET /api/2.0/mlflow/experiments/search`` instead.
    ``sqlite:///`` and ``file://``: the directory exists and is writable, and an existing
    database file really is SQLite. Other schemes (``postgresql://``, ``databricks``) are passed
    through unchecked: connecting to them can itself block.
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("http", "https"):
        _check_http(uri.rstrip("/"), timeout_s)
    elif parsed.scheme == "sqlite":
        raw = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else parsed.path
        if raw not in ("", ":memory:"):
            _check_sqlite_file(Path(raw), uri)
    elif parsed.scheme == "file":
        _check_directory(Path(urllib.parse.unquote(parsed.path)), uri, create_ok=True)


@contextmanager
def bounded_http_retries(limits: Mapping[str, str] = SEARCH_HTTP_LIMITS) -> Iterator[None]:
    """Within the block, MLflow's HTTP calls give up after ``limits`` (MLflow reads these
    variables at every request); values the user set in the environment win."""
    saved = {name: os.environ.get(name) for name in limits}
    for name, value in limits.items():
        os.environ.setdefault(name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def server_unreachable(uri: str, timeout_s: float = 3.0) -> str | None:
    """Why the ``http(s)://`` tracking server ``uri`` cannot be reached right now (e.g.
    ``"[Errno 111] Connection refused"``); ``None`` when it answers, or ``uri`` is no server."""
    if urllib.parse.urlparse(uri).scheme not in ("http", "https"):
        return None
    try:
        _http_get(f"{uri.rstrip('/')}/health", timeout_s)
    except OSError as error:
        return str(getattr(error, "reason", error))
    return None


def _check_http(base: str, timeout_s: float) -> None:
    advice = "start it (mlflow/server.sh) or pass another --tracking_uri / MLFLOW_TRACKING_URI"
    try:
        status, body = _http_get(f"{base}/health", timeout_s)
    except OSError as error:
        reason = getattr(error, "reason", error)
        raise TrackingUnavailableError(
            f"MLflow tracking server {base} is unreachable ({reason}); {advice}"
        ) from None
    if status == 200:
        return
    if status == 404:
        try:
            status, body = _http_get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", timeout_s)
        except OSError as error:
            raise TrackingUnavailableError(
                f"MLflow tracking server {base} is unreachable ({getattr(error, 'reason', error)}); {advice}"
            ) from None
        if status == 200:
            return
    if status in (401, 403):
        raise TrackingUnavailableError(
            f"MLflow tracking server {base} refused access (HTTP {status}); set MLFLOW_TRACKING_TOKEN or "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    snippet = body[:200].decode("utf-8", "replace").strip()
    raise TrackingUnavailableError(
        f"{base} does not answer like an MLflow tracking server (HTTP {status}: {snippet!r}); {advice}"
    )


def _http_get(url: str, timeout_s: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=_auth_headers())
    # No proxies: a tracking server is normally on the cluster's network, and an HTTP(S)_PROXY
    # meant for the internet must not turn a refused connection into a slow proxy error.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status, response.read(4096)
    except urllib.error.HTTPError as error:
        return error.code, error.read(4096) if error.fp is not None else b""


def _auth_headers() -> dict[str, str]:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def _check_sqlite_file(path: Path, uri: str) -> None:
    _check_directory(path.parent, uri, create_ok=False)
    if path.exists():
        if not path.is_file():
            raise TrackingUnavailableError(f"tracking URI {uri}: {path} is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise TrackingUnavailableError(f"tracking URI {uri}: {path} is not readable and writable")
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise TrackingUnavailableError(f"tracking URI {uri}: {path} exists but is not an SQLite database")


def _check_directory(directory: Path, uri: str, create_ok: bool) -> None:
    if not directory.exists():
        if create_ok and directory.parent.is_dir() and os.access(directory.parent, os.W_OK):
            return
        raise TrackingUnavailableError(f"tracking URI {uri}: directory {directory} does not exist")
    if not directory.is_dir():
        raise TrackingUnavailableError(f"tracking URI {uri}: {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TrackingUnavailableError(f"tracking URI {uri}: directory {directory} is not writable")
