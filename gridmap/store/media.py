"""Where the bytes of attachments live: one interface, two backends.

* `DirectoryStore`: files under a directory (by default beside the SpatiaLite file, see `default_directory`);
  written to a temporary name, flushed to disk and renamed, so a reader never sees half a file.
* `S3Store`: an S3-compatible object store (AWS S3, MinIO, Ceph RGW, OSS/COS in S3 mode) through boto3, when a
  bucket is configured.

Keys are made by `gridmap.cases.attachments` (`cases/<case id>/<random>.<ext>`); a store accepts only such plain keys
(lower-case letters, digits, `/`, `.`, `-`, `_`; no empty or dot segments), never a path a caller chose.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gridmap.errors import NotFound, Unavailable

KEY = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+(\.[a-z0-9]+)*)*$")


class StorageUnavailable(Unavailable):
    """The media store cannot take or give files now (`full`: no space left); nothing was stored."""

    def __init__(self, message: str, *, full: bool = False, zh: str | None = None) -> None:
        super().__init__(message, field="file", zh=zh)
        self.full = full


def _unavailable(exc: Exception, action: str) -> StorageUnavailable:
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if full:
        return StorageUnavailable(
            f"file: the media store is full; the photo was not {action}",
            full=True,
            zh="文件：照片存储空间已满，照片未保存，请联系管理员。",
        )
    return StorageUnavailable(
        f"file: the media store is unavailable ({type(exc).__name__}); the photo was not {action}; try again later",
        zh="文件：照片存储暂时不可用，请稍后重试。",
    )


def check_key(key: str) -> str:
    if not (0 < len(key) <= 200 and KEY.match(key)):
        raise ValueError(f"not a media key: {key[:60]!r}")
    return key


class MediaStore(Protocol):
    """What every backend does."""

    name: str

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key` (replacing what was there)."""

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; `NotFound` when there are none."""

    def delete(self, key: str) -> None:
        """Remove `key` (nothing happens when it is not there)."""


class DirectoryStore:
    """Files under `root`; the key is the relative path."""

    name = "directory"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        except OSError as exc:
            raise _unavailable(exc, "stored") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _unavailable(exc, "stored") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        try:  # the rename itself is durable once the directory is flushed
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"media: nothing is stored as {key!r}", field="id", zh=f"媒体：未找到存储的文件 {key!r}。"
            ) from None
        except OSError as exc:
            raise _unavailable(exc, "read") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


@dataclass(frozen=True)
class S3Config:
    bucket: str
    endpoint_url: str | None = None  # None: AWS itself
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    prefix: str = ""  # e.g. "gridmap/" to share a bucket
    path_style: bool = True  # most S3-compatible servers (MinIO …) want path-style addressing


class S3Store:
    """Objects in an S3-compatible bucket."""

    name = "s3"

    def __init__(self, config: S3Config, client: Any = None) -> None:  # a boto3 S3 client (boto3 has no types)
        self.config = config
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=config.endpoint_url,
                region_name=config.region or "us-east-1",
                aws_access_key_id=config.access_key or None,
                aws_secret_access_key=config.secret_key or None,
                config=Config(
                    s3={"addressing_style": "path" if config.path_style else "auto"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                ),
            )
        self.client = client

    def _key(self, key: str) -> str:
        return f"{self.config.prefix}{check_key(key)}"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.config.bucket, Key=self._key(key), Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc, "stored") from exc

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.get_object(Bucket=self.config.bucket, Key=self._key(key))
            with answer["Body"] as body:
                data: bytes = body.read()
                return data
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(
                    f"media: nothing is stored as {key!r}", field="id", zh=f"媒体：未找到存储的文件 {key!r}。"
                ) from None
            raise _unavailable(exc, "read") from exc
        except BotoCoreError as exc:
            raise _unavailable(exc, "read") from exc

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.config.bucket, Key=self._key(key))


def default_directory(database_url: str) -> Path:
    """Beside the SpatiaLite file (`gridmap.sqlite` → `gridmap.media/`); for another database, a directory of its
    own in the user's data directory (`$XDG_DATA_HOME` or `~/.local/share`, then `gridmap/media/<host>-<port>-
    <database>`), so that two databases never share files. Set GRIDMAP_MEDIA_DIR (or a bucket) in production."""
    import sqlalchemy as sa

    from gridmap.store.engine import sqlite_path

    path = sqlite_path(database_url)
    if path is not None:
        p = Path(path)
        return p.with_name(f"{p.stem}.media")
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":  # in memory
        return Path("gridmap.media").resolve()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{url.host or 'local'}-{url.port or 5432}-{url.database or 'db'}")
    return base / "gridmap" / "media" / name
