"""Where a store lives: local directories, ``file://`` URLs, zip files, and object storage.

A location string is parsed once into a :class:`Location`; the reader opens a zarr store for it
and the writer publishes a finished local build to it atomically:

- local directory: the build is renamed into place (one ``rename``; a reader sees all or nothing);
- zip file (``*.zip``): the build is zipped next to the destination and linked into place
  (``link`` never replaces an existing file);
- object storage (``s3://``, ``gs://``, any fsspec protocol): every object is uploaded, the root
  ``zarr.json`` last; until it exists the prefix is not an openable store.

Nothing already published is ever replaced: publishing onto an existing store is refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from zarr.storage import FsspecStore, LocalStore, ZipStore

ROOT_METADATA = "zarr.json"


class StoreLocationError(ValueError):
    """A location that cannot hold or serve a store (bad URL, missing bucket, existing store...)."""


@dataclass(frozen=True)
class Location:
    """A parsed store location.

    Attributes:
        kind: ``"local"`` (a directory), ``"zip"`` (a local zip file) or ``"remote"`` (fsspec URL).
        target: the local path (local, zip) or the URL without a trailing slash (remote).
        original: the string the user gave (for messages).
    """

    kind: Literal["local", "zip", "remote"]
    target: str
    original: str

    @property
    def protocol(self) -> str:
        return urlparse(self.target).scheme if self.kind == "remote" else "file"

    def __str__(self) -> str:
        return self.original


def parse_location(location: str | os.PathLike) -> Location:
    """Parse a path or URL: ``/data/x``, ``file:///data/x``, ``x.zip``, ``s3://bucket/x``."""
    text = os.fspath(location)
    if not text:
        raise StoreLocationError("empty store location")
    parsed = urlparse(text)
    if parsed.scheme == "file":
        path = parsed.path
        return Location("zip" if path.endswith(".zip") else "local", path, text)
    if parsed.scheme and "://" in text and len(parsed.scheme) > 1:  # "C:\" is a drive, not a URL
        if text.rstrip("/").endswith(".zip"):
            raise StoreLocationError(
                f"{text}: zip stores must be local files; publish a directory store to "
                f"{parsed.scheme}:// instead"
            )
        return Location("remote", text.rstrip("/"), text)
    path = os.path.abspath(os.path.expanduser(text))
    return Location("zip" if path.endswith(".zip") else "local", path, text)


def _fsspec_filesystem(loc: Location, storage_options: dict[str, Any] | None):
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(loc.target, **(storage_options or {}))
    except (ImportError, ValueError) as err:
        raise StoreLocationError(
            f"{loc}: cannot reach {loc.protocol}:// storage ({err}); install spin[remote]"
        ) from None
    return fs, path


def open_store(
    location: str | Location, *, storage_options: dict[str, Any] | None = None
) -> Any:
    """A read-only zarr store for an existing location (raises if there is nothing there)."""
    loc = location if isinstance(location, Location) else parse_location(location)
    if loc.kind == "local":
        if os.path.isfile(loc.target):
            raise StoreLocationError(f"{loc}: a file, not a store directory (or a .zip store)")
        if not os.path.isdir(loc.target):
            raise StoreLocationError(f"{loc}: no such store directory")
        return LocalStore(loc.target, read_only=True)
    if loc.kind == "zip":
        if not os.path.isfile(loc.target):
            raise StoreLocationError(f"{loc}: no such zip file")
        if not zipfile.is_zipfile(loc.target):
            raise StoreLocationError(f"{loc}: not a zip file")
        return ZipStore(loc.target, mode="r")
    fs, path = _fsspec_filesystem(loc, storage_options)
    _check_bucket(fs, path, loc)
    return FsspecStore(fs=_async_fs(fs), path=path, read_only=True)


def _async_fs(fs: Any) -> Any:
    """zarr's FsspecStore needs an async filesystem; wrap a sync one (e.g. a memory fs).

    ``url_to_fs`` gives a *sync* instance even of an async filesystem (s3fs): its client lives
    on fsspec's own event loop, and zarr, which awaits it on zarr's loop, fails with "attached to
    a different loop". Such a filesystem is re-created in async mode (what zarr's own
    ``FsspecStore.from_url`` does), so its client is made on zarr's loop.
    """
    if getattr(fs, "async_impl", False):
        if getattr(fs, "asynchronous", False):
            return fs
        return type(fs)(**{**fs.storage_options, "asynchronous": True})
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    return AsyncFileSystemWrapper(fs, asynchronous=True)


def _check_bucket(fs: Any, path: str, loc: Location) -> None:
    bucket = path.split("/", 1)[0]
    try:
        if fs.exists(bucket):
            return
        # exists() answers False for every failure (s3fs swallows access-denied and connection
        # errors alike): ask again in a way that says why before calling the bucket missing.
        fs.info(bucket)
    except FileNotFoundError:
        pass
    except PermissionError as err:
        raise StoreLocationError(
            f"{loc}: access denied to bucket {bucket!r} ({err}); check credentials"
        ) from None
    except Exception as err:  # botocore raises its own types for missing credentials
        raise StoreLocationError(
            f"{loc}: cannot reach storage for bucket {bucket!r}: {type(err).__name__}: {err}"
        ) from None
    else:
        return  # info() found it where exists() did not
    raise StoreLocationError(f"{loc}: bucket {bucket!r} does not exist")


def exists(location: str | Location, *, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether a published store (or anything that would be replaced) is at the location."""
    loc = location if isinstance(location, Location) else parse_location(location)
    if loc.kind == "local":
        return os.path.exists(loc.target) and (
            not os.path.isdir(loc.target) or any(os.scandir(loc.target))
        )
    if loc.kind == "zip":
        return os.path.exists(loc.target)
    fs, path = _fsspec_filesystem(loc, storage_options)
    _check_bucket(fs, path, loc)
    return bool(fs.exists(f"{path}/{ROOT_METADATA}"))


def default_staging_dir(location: str | Location) -> Path:
    """Where a store is built before publishing: beside a local destination (same filesystem,
    so publishing is a rename), else under ``$SPIN_STAGING_DIR`` or ``~/.cache/spin/staging``."""
    loc = location if isinstance(location, Location) else parse_location(location)
    if loc.kind in ("local", "zip"):
        return Path(loc.target + ".partial")
    root = Path(os.environ.get("SPIN_STAGING_DIR", Path.home() / ".cache" / "spin" / "staging"))
    return root / hashlib.sha256(loc.target.encode()).hexdigest()[:24]


def publish_directory(
    build: Path, location: str | Location, *, storage_options: dict[str, Any] | None = None
) -> None:
    """Move a finished local store build to its location atomically (see the module docstring).

    Raises:
        StoreLocationError: if a store already exists there (nothing is replaced).
    """
    loc = location if isinstance(location, Location) else parse_location(location)
    if exists(loc, storage_options=storage_options):
        raise StoreLocationError(f"{loc}: a store already exists there; datasets are immutable")
    if loc.kind == "local":
        os.makedirs(os.path.dirname(loc.target) or ".", exist_ok=True)
        if os.path.isdir(loc.target):
            os.rmdir(loc.target)  # empty (checked above): rename needs the name free
        os.rename(build, loc.target)
        return
    if loc.kind == "zip":
        os.makedirs(os.path.dirname(loc.target) or ".", exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".spin-", suffix=".zip.tmp",
                                   dir=os.path.dirname(loc.target) or ".")
        os.close(fd)
        try:
            # Chunks are compressed already: store them as they are (fast, seekable).
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for file in sorted(build.rglob("*")):
                    if file.is_file():
                        zf.write(file, file.relative_to(build).as_posix())
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            try:
                os.link(tmp, loc.target)  # fails rather than replace a store published meanwhile
            except FileExistsError:
                raise StoreLocationError(
                    f"{loc}: a store already exists there; datasets are immutable"
                ) from None
        finally:
            os.unlink(tmp)
        shutil.rmtree(build)
        return
    fs, path = _fsspec_filesystem(loc, storage_options)
    files = sorted(f for f in build.rglob("*") if f.is_file())
    root = build / ROOT_METADATA
    # Everything but the root metadata first: until it lands, readers see no store.
    for file in [f for f in files if f != root] + [root]:
        fs.put_file(str(file), f"{path}/{file.relative_to(build).as_posix()}")
    shutil.rmtree(build)
