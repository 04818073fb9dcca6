"""Files that are either complete or absent, local paths and fsspec URLs alike, and the keys that name them.

Every writer in the package goes through `atomic_path` (or the helpers built on it): an
interrupted run never leaves a half-written table, checkpoint, audio file or manifest behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from pathlib import Path
from typing import Iterator

import pandas as pd


def is_url(path: str | os.PathLike) -> bool:
    """True for an fsspec URL (``s3://bucket/run``, ``gs://…``, ``memory://…``), false for a local path."""
    return "://" in str(path)


def join(base: str | os.PathLike, *parts: str) -> str | Path:
    """``base / parts``: a URL stays a string (pathlib would fold its ``//``), a local path a Path."""
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return Path(base).joinpath(*parts)


def exists(path: str | os.PathLike) -> bool:
    if is_url(path):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(str(path))
        return fs.exists(inner)
    return Path(path).exists()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` ends the temporary name (a writer that picks its format by suffix needs the real one,
    e.g. ``".tmp.mid"``). The temporary name carries the process id, so parallel writers never collide.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` so that ``path`` is either absent or complete, never half-written.

    Local files: a temporary file renamed over the target. fsspec URLs: object stores publish
    an object only when its upload completes, so the object is written directly.
    """
    if is_url(path):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(str(path))
        fs.makedirs(inner.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(inner, "wb") as f:
            f.write(data)
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    write_bytes_atomic(text.encode(), path)


def write_parquet_atomic(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` as parquet to a local path or fsspec URL, either complete or not at all."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_bytes_atomic(buffer.getvalue(), path)


def write_csv_atomic(table: pd.DataFrame, path: str | os.PathLike) -> None:
    write_bytes_atomic(table.to_csv(index=False).encode(), path)


def slug(name: str) -> str:
    """``name`` as a file or folder name: every run of characters other than letters, digits, ``._-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def derived_seed(*parts: object) -> int:
    """A 32-bit seed fixed by ``parts`` (so each piece gets its own, reproducible noise)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def file_digest(path: str | os.PathLike) -> str:
    """Short content hash of a file ("missing" when it cannot be read: the scoring will say why)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "missing"
