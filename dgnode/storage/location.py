"""Where an artefact lives: a local path or an ``s3://bucket/key`` URI, behind one small API.

Every artefact location in dgnode (manifest, feature store, run and search directories, Ray
storage, reports) is given by the user as a string and resolved here, once, by :func:`resolve`.
Code that writes or reads artefacts takes a :class:`Location` and never asks which kind it holds,
except where the two truly differ (an exclusive create: :mod:`dgnode.storage.exclusive`).

What holds on both kinds:

* :meth:`Location.write_bytes` (and ``write_text``/``write_json``/``write_with``) is atomic: a
  reader sees the old object or the new one, never part of one. Locally that is a temporary
  renamed into place (:mod:`dgnode.atomic`); on S3 (no rename) it is one PUT of the whole object
  with its ``Content-MD5``: the server stores all of it or nothing. Not pyarrow's output stream:
  it completes its upload when closed, also after the code writing into it raised (checked
  against SeaweedFS), which would publish half an object under the final name; its multipart
  uploads are invisible until completed. ``write_with`` therefore writes into memory first.
* :meth:`Location.children` lists direct children by name pattern, sorted; hidden names (a leading
  dot: temporaries, locks) are never listed unless the pattern asks for them.
* Directories exist on S3 only as key prefixes: :meth:`Location.mkdir` is a no-op there and a
  prefix "exists" once something is stored under it.
* An S3 failure is one :class:`~dgnode.errors.InputError` or
  :class:`~dgnode.errors.EnvironmentFault` naming the URI (:func:`dgnode.storage.s3.s3_error`); a
  missing object is :class:`FileNotFoundError` on both kinds, for callers that expect absence.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from dgnode.errors import InputError
from dgnode.storage.s3 import s3_error, s3_filesystem

__all__ = ["Location", "resolve"]

S3_SCHEME = "s3://"


class Location:
    """A file or directory on the local disk or in S3.

    Attributes:
        uri: what a user reads: an absolute local path, or ``s3://bucket/key``.
        fs: the ``pyarrow.fs.FileSystem`` that holds it.
        path: the path inside ``fs`` (absolute local path, or ``bucket/key``).
    """

    __slots__ = ("uri", "fs", "path")

    def __init__(self, uri: str, fs: Any, path: str) -> None:
        self.uri, self.fs, self.path = uri, fs, path

    # -- naming ----------------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        return self.uri.startswith(S3_SCHEME)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> "Location":
        head = self.path.rstrip("/").rsplit("/", 1)[0]
        uri_head = self.uri.rstrip("/").rsplit("/", 1)[0]
        return Location(uri_head, self.fs, head or "/")

    def join(self, *parts: str) -> "Location":
        rel = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
        if not rel:
            return self
        return Location(f"{self.uri.rstrip('/')}/{rel}", self.fs, f"{self.path.rstrip('/')}/{rel}")

    def __truediv__(self, part: str) -> "Location":
        return self.join(part)

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def local_path(self) -> Path:
        """The local path; a remote location here is a usage error naming the URI."""
        if self.is_remote:
            raise InputError("this needs a local path, not an object-store URI", path=self.uri)
        return Path(self.path)

    def ray_storage(self) -> tuple[str, Any]:
        """``(storage_path, storage_filesystem)`` for Ray Train/Tune ``RunConfig``: with an explicit
        filesystem Ray wants the path without its scheme (``bucket/prefix``)."""
        return (self.path, self.fs) if self.is_remote else (self.path, None)

    # -- asking ----------------------------------------------------------------------------
    def _info(self):
        with self._errors("read"):
            return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def size(self) -> int:
        info = self._info()
        if info.size is None:
            raise FileNotFoundError(self.uri)
        return int(info.size)

    def children(self, pattern: str = "*", kind: str = "file") -> list["Location"]:
        """Direct children whose name matches ``pattern`` (``fnmatch``), sorted by name; ``kind``
        is ``file``, ``dir`` or ``any``. A missing directory has no children."""
        import pyarrow.fs as pafs

        wanted = {"file": (pafs.FileType.File,), "dir": (pafs.FileType.Directory,),
                  "any": (pafs.FileType.File, pafs.FileType.Directory)}[kind]
        with self._errors("list"):
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        found = []
        for info in infos:
            name = info.base_name
            if info.type not in wanted or not fnmatch.fnmatchcase(name, pattern):
                continue
            if name.startswith(".") and not pattern.startswith("."):
                continue
            found.append(self.join(name))
        return sorted(found, key=lambda loc: loc.name)

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        with self._errors("read"), self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self) -> str:
        """UTF-8 text; undecodable bytes are :class:`UnicodeDecodeError` for the caller to name."""
        return self.read_bytes().decode("utf-8")

    def read_json(self) -> Any:
        return json.loads(self.read_text())

    @contextlib.contextmanager
    def open_input(self) -> Iterator[Any]:
        """A seekable file (what ``pyarrow.parquet`` wants to read footers without the whole part)."""
        with self._errors("read"), self.fs.open_input_file(self.path) as handle:
            yield handle

    # -- writing ---------------------------------------------------------------------------
    def mkdir(self) -> "Location":
        if not self.is_remote:
            with self._errors("create"):
                self.fs.create_dir(self.path, recursive=True)
        return self

    def write_bytes(self, data: bytes) -> "Location":
        """Atomic: see the module docstring."""
        if not self.is_remote:
            from dgnode.atomic import write_bytes

            write_bytes(self.path, data)
            return self
        import base64
        import hashlib

        from dgnode.storage.s3 import s3_client

        bucket, _, key = self.path.partition("/")
        digest = base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - integrity, not security
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=bytes(data), ContentMD5=digest)
        except Exception as error:  # botocore's ClientError and connection errors
            raise s3_error(self.uri, error, "write") from None
        return self

    def write_text(self, text: str) -> "Location":
        return self.write_bytes(text.encode("utf-8"))

    def write_json(self, data: Any, indent: int | None = 2) -> "Location":
        """JSON with NaN/inf written as null, like :func:`dgnode.atomic.write_json`."""
        from dgnode.atomic import json_text

        return self.write_text(json_text(data, indent=indent))

    def write_with(self, writer) -> "Location":
        """Atomic write through ``writer(file_like)`` (e.g. ``pq.write_table(table, f)``); on S3
        the object is built in memory, then stored by one PUT (see the module docstring)."""
        if not self.is_remote:
            from dgnode.atomic import atomic_write

            atomic_write(self.path, lambda temporary: writer(str(temporary)))
            return self
        import pyarrow as pa

        buffer = pa.BufferOutputStream()
        writer(buffer)  # a writer that raises leaves nothing behind
        return self.write_bytes(buffer.getvalue().to_pybytes())

    def delete(self) -> None:
        """Remove a file; a missing one is fine."""
        import pyarrow.fs as pafs

        with self._errors("delete"):
            if self.fs.get_file_info(self.path).type == pafs.FileType.File:
                self.fs.delete_file(self.path)

    def download(self, target: str | Path) -> Path:
        """Copy to a local file (atomically: a partial download never has the final name)."""
        target = Path(target)
        if not self.is_remote:
            from dgnode.atomic import atomic_write
            import shutil

            atomic_write(target, lambda temporary: shutil.copyfile(self.path, temporary))
            return target
        from dgnode.atomic import atomic_write

        def _copy(temporary: Path) -> None:
            with self._errors("read"), self.fs.open_input_stream(self.path) as src, open(temporary, "wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)

        atomic_write(target, _copy)
        return target

    def check_bucket(self) -> None:
        """Before any work: one clear error naming the URI if the endpoint cannot be reached, the
        credentials are refused or the bucket does not exist. Local locations pass."""
        if not self.is_remote:
            return
        import pyarrow.fs as pafs

        bucket = self.path.split("/", 1)[0]
        with self._errors("open the bucket"):
            info = self.fs.get_file_info(bucket)
            # A missing bucket is NotFound on some servers and an error on others; listing one
            # key proves the credentials too (HEAD of a bucket is often allowed anonymously).
            if info.type == pafs.FileType.NotFound:
                raise OSError(f"NoSuchBucket: bucket does not exist: {bucket}")
            self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True, recursive=False))

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as error:
            if not self.is_remote or error.errno is not None:
                raise
            raise s3_error(self.uri, error, doing) from None


def resolve(where: "str | os.PathLike[str] | Location") -> Location:
    """The :class:`Location` of a user-given path or ``s3://bucket/key`` URI.

    A local path becomes absolute (a relative one would mean different things on different
    nodes and after a ``cd``). An S3 URI must name a bucket and carry no credentials.
    """
    if isinstance(where, Location):
        return where
    text = os.fspath(where)
    if text.startswith(S3_SCHEME):
        rest = text[len(S3_SCHEME):].strip("/")
        bucket = rest.split("/", 1)[0]
        if "@" in bucket or ":" in bucket:
            # Never echo it: the part before '@' may be a key pair.
            raise InputError("an s3:// URI must not carry credentials or a port; use the AWS "
                             "variables or profile for credentials and AWS_ENDPOINT_URL for the server",
                             path="s3://<redacted>")
        if not bucket:
            raise InputError("an s3:// URI must name a bucket: s3://BUCKET/PREFIX", path=text)
        return Location(f"{S3_SCHEME}{rest}", s3_filesystem(), rest)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme and scheme.group(1) != "file":
        scheme = scheme.group(1)
        raise InputError(f"unsupported storage scheme {scheme}://; expected a local path or s3://BUCKET/PREFIX",
                         path=text)
    if text.startswith("file://"):
        text = text[len("file://"):]
    import pyarrow.fs as pafs

    path = os.path.abspath(os.path.expanduser(text))
    return Location(path, _local_fs(pafs), path)


def _local_fs(pafs):
    return pafs.LocalFileSystem()
