"""Atomic file writes, early checks that an output path can be written, one writer of a file at a time, and file
hashes and use marks for caches."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import hashlib
import json
import math
import os
import stat
import tempfile
import time
from pathlib import Path

from ofahw.errors import UserError


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when ``path`` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output path {path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {existing} is not a writable directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"cannot write {path}: permission denied")
    return path


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike, holder: str):
    """While held, no other ofahw process writes ``path``: a second writer (a profile into the same LUT, a
    reprofile of it) is refused with one line naming ``holder`` (what holds it, such as ``ofahw reprofile``),
    not queued, since two campaigns on one device at once would also slow each other's measurements.
    The lock is an exclusive ``flock`` on ``PATH.lock``, released by the system when its holder dies;
    the file is removed on the way out."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a+", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot create the lock {lock}: {exc.strerror}") from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not lock.exists() or os.stat(lock).st_ino != os.fstat(fh.fileno()).st_ino:
                raise BlockingIOError  # its holder removed it as we opened it: it was writing just now
        except BlockingIOError:
            fh.seek(0)
            held_by = fh.read().strip() or "another ofahw process"
            raise UserError(f"{held_by} is writing {path} now (lock {lock}); wait for it to finish or write "
                            "elsewhere") from None
        fh.truncate(0)
        fh.write(f"{holder} (pid {os.getpid()})")
        fh.flush()
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # while still held, so no one can take a lock file on its way out


def refuse_overwriting(outputs, inputs) -> None:
    """Fail, before any work, when a file a command would write is one of the files it reads."""
    given = {Path(i).resolve(): Path(i) for i in inputs if i is not None}
    for out in outputs:
        hit = given.get(Path(out).resolve())
        if hit is not None:
            raise UserError(f"output {out} is one of this command's inputs ({hit}); choose another output path")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# read once: setting the umask to read it is not safe while other threads create files
NEW_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file beside ``path``, fsync it, then rename over ``path``. The file gets the
    mode a plain write would give it (the one it has, else the umask's): the temp file is made
    readable by its owner alone, and a LUT others cannot read is no LUT for a team."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content, read in chunks (weights files are large)."""
    return _read_sha256(path).hexdigest()


def _read_sha256(path: str | os.PathLike):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest


@functools.lru_cache(maxsize=8192)
def _version_sha256(path: str, mtime_ns: int, size: int):
    return _read_sha256(path)


def content_sha256(path: str | os.PathLike):
    """A SHA-256 hash object fed with the file's content (a copy: extend it freely), read once per
    version of the file (its path, modification time and size): a campaign keys a model by its content
    in every round it measures it."""
    path = Path(path).resolve()
    info = path.stat()
    return _version_sha256(str(path), info.st_mtime_ns, info.st_size).copy()


def prune_least_used(root: Path, pattern: str, max_bytes: int) -> None:
    """Delete the least recently used files (by :func:`mark_used`'s access time) matching ``pattern``
    in ``root`` until those left hold at most ``max_bytes``."""
    files = sorted(root.glob(pattern), key=lambda p: p.stat().st_atime, reverse=True)
    total = 0
    for path in files:
        total += path.stat().st_size
        if total > max_bytes:
            path.unlink(missing_ok=True)


def mark_used(path: str | os.PathLike) -> None:
    """Mark a cached file as used now, for a least-recently-used prune: its access time only. Its
    modification time stays, as it is part of the file's identity elsewhere: OpenVINO's model cache
    compiles a model file anew once it changes, and :func:`content_sha256` reads it again."""
    os.utime(path, ns=(time.time_ns(), os.stat(path).st_mtime_ns))


def cache_dir(*parts: str) -> Path:
    """ofahw's cache folder: $OFAHW_CACHE, else $XDG_CACHE_HOME/ofahw, else ~/.cache/ofahw."""
    root = os.environ.get("OFAHW_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ofahw")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_csv_rows(path: Path, what: str) -> list[dict]:
    """The rows of a CSV file ofahw wrote, as dicts; an unreadable file is one clear error."""
    try:
        return list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None


def strict_json(value, **kwargs) -> str:
    """``json.dumps`` that writes strict JSON: a non-finite number (NaN, infinity: a value that does
    not exist, such as the overhead of a run that timed nothing) becomes null."""
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
        return _finite(value.item())
    return value
