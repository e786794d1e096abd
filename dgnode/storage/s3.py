"""S3 settings from the standard AWS environment, and the one place S3 errors become one line.

Endpoint and credentials are never dgnode options: they come from where every AWS tool reads them,
so the same command talks to AWS S3 or to any S3-compatible server (SeaweedFS, MinIO, Ceph):

* endpoint: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (unset: AWS itself). Recent pyarrow
  does not read these by itself (apache/arrow#49643), so they are read here and passed on;
* credentials: the AWS SDK's default chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  ``AWS_PROFILE`` and ``~/.aws/credentials``, instance profiles). dgnode never holds them, so they
  cannot reach a log, an MLflow param or a store's metadata;
* region: ``AWS_REGION``/``AWS_DEFAULT_REGION``, else the profile's, else ``us-east-1``.

Why pyarrow.fs and not fsspec/s3fs: pyarrow is already the Parquet engine, Ray Data reads and
writes through ``pyarrow.fs`` and Ray Train/Tune take a ``pyarrow.fs.FileSystem`` as
``storage_filesystem``: one client, one credential chain, no extra dependency. What pyarrow cannot
do goes through boto3 (:func:`s3_client`, same variables): a conditional put or delete (the
exclusive create a lock needs, :mod:`dgnode.storage.exclusive`) and a whole-object PUT
(:meth:`dgnode.storage.location.Location.write_bytes`): pyarrow's output stream completes its
upload when it is closed, also when the code writing into it raised, so a half-written object
would appear under its final name.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass

from dgnode.errors import EnvironmentFault, InputError

__all__ = ["S3Settings", "credentials_fingerprint", "s3_client", "s3_error", "s3_filesystem"]

# A few seconds per attempt and three attempts: an unreachable endpoint is one clear line in
# seconds, not the SDK's default minutes of retries.
_CONNECT_TIMEOUT_S = 5.0
_REQUEST_TIMEOUT_S = 60.0
_ATTEMPTS = 3


@dataclass(frozen=True)
class S3Settings:
    """Where S3 requests go, read from the AWS environment (see the module docstring).

    Attributes:
        endpoint: full endpoint URL with scheme (``http://127.0.0.1:8333``), or None for AWS.
        region: the signing region.
    """

    endpoint: str | None = None
    region: str = "us-east-1"

    def __post_init__(self) -> None:
        if self.endpoint is not None and not re.match(r"^https?://[^/\s]+/?$", self.endpoint):
            raise InputError("expected an endpoint URL like http://host:port or https://host",
                             path=f"AWS_ENDPOINT_URL={self.endpoint}")

    @classmethod
    def from_environment(cls) -> "S3Settings":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(endpoint=endpoint.rstrip("/") if endpoint else None, region=region)

    @property
    def where(self) -> str:
        return self.endpoint or "AWS S3"


def s3_filesystem(settings: S3Settings | None = None):
    """A ``pyarrow.fs.S3FileSystem`` for ``settings`` (default: the environment's), cached per
    settings and credentials (changed variables give a new client)."""
    return _filesystem(settings or S3Settings.from_environment(), credentials_fingerprint())


def credentials_fingerprint() -> str:
    """A hash of the credential variables: a cache key that never holds a secret."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
    joined = "\0".join(os.environ.get(name, "") for name in names)
    return hashlib.sha256(joined.encode()).hexdigest()


@functools.lru_cache(maxsize=8)
def _filesystem(settings: S3Settings, _credentials: str):
    import pyarrow.fs as pafs

    kwargs = {}
    if settings.endpoint:
        scheme, _, _ = settings.endpoint.partition("://")
        kwargs.update(endpoint_override=settings.endpoint, scheme=scheme)
    return pafs.S3FileSystem(
        region=settings.region, connect_timeout=_CONNECT_TIMEOUT_S, request_timeout=_REQUEST_TIMEOUT_S,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=_ATTEMPTS), **kwargs,
    )


def s3_client():
    """A boto3 S3 client for the environment's settings and credentials (cached like
    :func:`s3_filesystem`), with the same short timeouts and retries."""
    return _client(S3Settings.from_environment(), credentials_fingerprint())


@functools.lru_cache(maxsize=8)
def _client(settings: S3Settings, _credentials: str):
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=_CONNECT_TIMEOUT_S, read_timeout=_REQUEST_TIMEOUT_S,
                    retries={"max_attempts": _ATTEMPTS, "mode": "standard"})
    return boto3.client("s3", endpoint_url=settings.endpoint, region_name=settings.region, config=config)


# (pattern in the SDK's message, error class, what it means and what to do). Order matters: the
# first match wins, and the SDK names the cause in different words across versions and servers.
_CAUSES = (
    (r"NoSuchBucket|bucket does not exist|specified bucket", InputError,
     "the bucket does not exist: create it (e.g. `aws s3 mb s3://BUCKET`) or fix the URI"),
    (r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|ACCESS_DENIED|Forbidden|HTTP response code: 403"
     r"|credentials|InvalidToken|ExpiredToken",
     InputError, "the S3 server refused the credentials: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
     "or AWS_PROFILE and the bucket's permissions"),
    (r"curlCode: 7|Couldn't connect|Could not connect|Connection refused|Could not resolve|curlCode: 6|curlCode: 28"
     r"|timed out|Timeout|Unable to connect|Network|EndpointConnectionError|Failed to connect",
     EnvironmentFault, "cannot reach the S3 endpoint {where}: is the server running and "
     "AWS_ENDPOINT_URL right?"),
)


def s3_error(uri: str, error: BaseException, doing: str = "access") -> InputError | EnvironmentFault:
    """One clear error naming ``uri`` for an S3 failure ``error`` (an ``OSError`` from pyarrow or
    a botocore error); the SDK's own words follow in brackets, shortened, never credentials."""
    text = str(error)
    settings = S3Settings.from_environment()
    for pattern, kind, meaning in _CAUSES:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return kind(f"cannot {doing}: {meaning.format(where=settings.where)} [{_short(text)}]", path=uri)
    return EnvironmentFault(f"cannot {doing} on {settings.where}: {_short(text)}", path=uri)


def _short(text: str) -> str:
    text = " ".join(text.split())
    # Never echo a credential the SDK might have put into its message.
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= 240 else text[:237] + "..."
