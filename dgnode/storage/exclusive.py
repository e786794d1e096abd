"""Create-if-absent and delete-if-unchanged: the two atomic steps a lock needs, on disk and in S3.

Locally they are ``open(O_CREAT | O_EXCL)`` and a compare-then-unlink. S3 has no rename and no
``O_EXCL``, but it has conditional requests (AWS since 2024, SeaweedFS, MinIO): a PUT with
``If-None-Match: *`` succeeds for exactly one of several writers, and a DELETE with ``If-Match:
<etag>`` removes the object only if nobody replaced it. pyarrow cannot send these headers, so
this module is the one place that talks to S3 through boto3 (same endpoint, region and
credential chain as :mod:`dgnode.storage.s3`).

A server without conditional writes would silently let two writers in; :func:`create_exclusive`
therefore reads the object back and checks that it holds this writer's bytes.

An object's age (:attr:`Versioned.age_s`, what a lease is measured by) is the server's own clock
minus the object's ``Last-Modified`` (both in whole seconds, from the same reply): clocks of the
machines that share a bucket need not agree.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from dgnode.storage.location import Location
from dgnode.storage.s3 import s3_client, s3_error

__all__ = ["Versioned", "create_exclusive", "delete_if_unchanged", "read_versioned"]

# S3 answers a lost race with 412; AWS may answer 409 when two conditional PUTs overlap.
_LOST = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass(frozen=True)
class Versioned:
    """An object's bytes with what identifies this version of it and how old it is."""

    data: bytes
    version: str
    age_s: float


def create_exclusive(location: Location, data: bytes) -> bool:
    """Create ``location`` holding ``data`` if nothing is there; False if something already is."""
    if not location.is_remote:
        path = location.local_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True
    bucket, key = _split(location)
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except Exception as error:  # botocore's ClientError and connection errors
        if _code(error) in _LOST:
            return False
        raise s3_error(location.uri, error, "create the lock object") from None
    current = read_versioned(location)
    if current is None or current.data != data:
        raise s3_error(location.uri, OSError(
            "the S3 server ignored If-None-Match (no conditional writes): two writers could both "
            "hold the lock; use a server with conditional writes (AWS S3, SeaweedFS, MinIO)"), "lock")
    return True


def read_versioned(location: Location) -> Versioned | None:
    """The object's bytes, version and age; None if absent."""
    if not location.is_remote:
        path = location.local_path()
        try:
            stat = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return Versioned(data, f"{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_size}", max(0.0, time.time() - stat.st_mtime))
    bucket, key = _split(location)
    try:
        reply = s3_client().get_object(Bucket=bucket, Key=key)
        data = reply["Body"].read()
    except Exception as error:
        if _code(error) in {"NoSuchKey", "404"}:
            return None
        raise s3_error(location.uri, error, "read the lock object") from None
    return Versioned(data, reply["ETag"], _server_age(reply))


def delete_if_unchanged(location: Location, version: str) -> bool:
    """Delete ``location`` if it is still at ``version``; False if it changed or is gone."""
    if not location.is_remote:
        current = read_versioned(location)
        if current is None or current.version != version:
            return False
        location.local_path().unlink(missing_ok=True)
        return True
    bucket, key = _split(location)
    try:
        s3_client().delete_object(Bucket=bucket, Key=key, IfMatch=version)
    except Exception as error:
        if _code(error) in _LOST | {"NoSuchKey", "404"}:
            return False
        raise s3_error(location.uri, error, "delete the lock object") from None
    return True


def _split(location: Location) -> tuple[str, str]:
    bucket, _, key = location.path.partition("/")
    return bucket, key


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _server_age(reply: dict) -> float:
    """Seconds since the object was written, by the server's clock (this machine's if the reply
    has no ``Date``)."""
    modified = reply.get("LastModified")
    if modified is None:
        return 0.0
    now = time.time()
    date = (reply.get("ResponseMetadata") or {}).get("HTTPHeaders", {}).get("date")
    if date:
        try:
            now = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return max(0.0, now - modified.timestamp())
