"""The object store: a local folder or an S3-compatible bucket (``s3://bucket/prefix``).

Objects are immutable and content-addressed. Every key is made by the server
(:func:`content_key`: ``<kind>/<aa>/<sha256>[.<ext>]``) and checked against that pattern
before any use, so no name a client sends ever becomes a path or a key.

``s3://`` uses pyarrow's S3 file system; the endpoint and credentials come from the usual
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL`` for a non-AWS server such as MinIO or SeaweedFS).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from .errors import StoreLocationError

logger = logging.getLogger(__name__)

KEY = re.compile(r"(segments|media)/[0-9a-f]{2}/[0-9a-f]{64}(\.[a-z0-9]{1,8})?")
CHUNK = 1 << 20


def content_key(kind: str, sha256: str, ext: str = "") -> str:
    key = f"{kind}/{sha256[:2]}/{sha256}" + (f".{ext}" if ext else "")
    return check_key(key)


def check_key(key: str) -> str:
    if not KEY.fullmatch(key):
        raise ValueError(f"store key {key!r} is not one the server makes")
    return key


class Store(Protocol):
    location: str

    def put(self, key: str, source: Path) -> None:
        """Store the file ``source`` under ``key`` (nothing if the key exists: immutable)."""

    def get(self, key: str, target: Path) -> None:
        """Copy the object to the file ``target`` (written to a temporary name, renamed)."""

    def exists(self, key: str) -> bool: ...

    def keys(self) -> Iterator[str]:
        """Every object's key (anything else under the location is skipped)."""

    def size(self, key: str) -> int:
        """The object's size in bytes (0 if it is gone)."""

    def delete(self, key: str) -> None:
        """Remove the object (nothing if it is gone); only the garbage collector calls it."""


def _copy_to(read: object, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".get-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(read, out, CHUNK)  # type: ignore[arg-type,type-var]
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore:
    """Objects as files under one folder (written to a temporary name, fsynced, renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.location = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreLocationError(
                f"--store {str(root)!r}: cannot create the folder: {exc.strerror or exc}"
            ) from None

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, source: Path) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".put-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str, target: Path) -> None:
        with open(self._path(key), "rb") as src:
            _copy_to(src, target)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def keys(self) -> Iterator[str]:
        for kind in ("segments", "media"):
            for path in sorted((self.root / kind).glob("*/*")):
                key = f"{kind}/{path.parent.name}/{path.name}"
                if KEY.fullmatch(key) and path.is_file():
                    yield key

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return 0

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """Objects in an S3 bucket under a prefix, through pyarrow's S3 file system."""

    def __init__(self, url: str) -> None:
        from pyarrow import fs

        rest = url[len("s3://") :].strip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StoreLocationError(f"--store {url!r}: name a bucket (s3://BUCKET/PREFIX)")
        self.location = url
        self._base = f"{bucket}/{prefix}".rstrip("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("KOHAKUBOARD_S3_ENDPOINT")
        kwargs: dict[str, object] = {}
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs["endpoint_override"] = host or scheme
            kwargs["scheme"] = scheme if host else "https"
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["region"] = region
        self.fs = fs.S3FileSystem(**kwargs)  # credentials: the usual AWS environment/files

    def _path(self, key: str) -> str:
        return f"{self._base}/{check_key(key)}"

    def put(self, key: str, source: Path) -> None:
        if self.exists(key):
            return
        with open(source, "rb") as src, self.fs.open_output_stream(self._path(key)) as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)

    def get(self, key: str, target: Path) -> None:
        with self.fs.open_input_stream(self._path(key)) as src:
            _copy_to(src, target)

    def exists(self, key: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self._path(key)).type != fs.FileType.NotFound

    def keys(self) -> Iterator[str]:
        from pyarrow import fs

        for kind in ("segments", "media"):
            selector = fs.FileSelector(f"{self._base}/{kind}", recursive=True, allow_not_found=True)
            for info in sorted(self.fs.get_file_info(selector), key=lambda i: i.path):
                key = info.path[len(self._base) + 1 :]
                if info.is_file and KEY.fullmatch(key):
                    yield key

    def size(self, key: str) -> int:
        info = self.fs.get_file_info(self._path(key))
        return int(info.size or 0) if info.is_file else 0

    def delete(self, key: str) -> None:
        from pyarrow import fs

        try:
            self.fs.delete_file(self._path(key))
        except FileNotFoundError:
            pass
        except OSError:
            if self.fs.get_file_info(self._path(key)).type != fs.FileType.NotFound:
                raise


def open_store(location: str) -> Store:
    """The store named by ``--store``: ``s3://bucket/prefix`` or a local folder."""
    text = location.strip()
    if text.startswith("s3://"):
        return S3Store(text)
    if "://" in text or not text:
        raise StoreLocationError(
            f"--store {location!r} is not accepted; give a local folder or s3://BUCKET/PREFIX"
        )
    return LocalStore(Path(text))
