"""Atomic files: readers see the old file or the new one, never a part.

Every file ScratchGPT writes for keeps (checkpoints, train states, token caches and their records,
downloaded corpora, exported folders) goes through `atomic_file`: a unique temp file in the same
directory, fsync'd, renamed over the target, the rename made durable. Two writers racing each leave
one complete file; a failed write (disk full, read-only, an error or Ctrl-C in the caller) removes
its temp file and leaves the previous file untouched.

One stale-temp policy: a temp file is named `.NAME.PID@HOST.XXXXXXXX.tmp`, and it is stale when
its writer ran on this host and no process has that id any more (killed mid-write). Stale temps of
a target are removed before each write to it, so they never pile up; live writers' files, and other
hosts', are kept.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _writer_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False


def remove_stale_temp_files(path: str | Path) -> None:
    """Remove the temp files that writers of path killed mid-write left behind (see the module)."""
    path = Path(path)
    prefix, host = _temp_prefix(path), socket.gethostname()
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        writer, _, _ = name[len(prefix) : -len(".tmp")].rpartition(".")
        pid, _, writer_host = writer.partition("@")
        if pid.isdigit() and writer_host == host and _writer_is_gone(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # another writer removed it first
                (path.parent / name).unlink()


@contextlib.contextmanager
def atomic_file(path: str | Path, *, before_replace: Callable[[Path], None] | None = None) -> Iterator[BinaryIO]:
    """A binary file to write path's new content into; it replaces path when the block ends well.

    before_replace(temp) runs once the content is on disk and before the rename: a check that
    raises cancels the write (a download whose hash is wrong), and a record about the file can be
    written first (a rename keeps inode and mtime).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    writer = f"{os.getpid()}@{socket.gethostname()}"
    fd, name = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{writer}.", suffix=".tmp", dir=path.parent)
    temp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename in directory durable; a system that cannot open a directory (Windows) skips it."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path atomically (see `atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data)
