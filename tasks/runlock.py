"""One writer per output folder: a run or backfill holds ``<out>/.chs-run.lock`` while it works.

A second ``chs run`` or ``chs backfill`` of the same folder fails at once with one sentence
naming the holder, instead of interleaving its files and history rows with the first one's.
The lock is an ``fcntl`` lock, so the kernel drops it when its holder dies, even by SIGKILL;
whoever takes the lock next removes the staging folders such a dead run left behind. A full
disk under the folder is reported as one sentence naming it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tasks.errors import ChsError

LOCK_FILE = ".chs-run.lock"
# what tasks/outputs.py leaves while it swaps a date in: ".<D>.staging-<hex>", ".<D>.old-<hex>"
_LEFTOVER = re.compile(r"^\.\d{4}-\d{2}-\d{2}\.(staging|old)-[0-9a-f]+$")
_FULL = ("no space left on device", "disk full", "disk quota exceeded", "os error 28")


class RunLockedError(ChsError):
    """Another run or backfill is writing the same output folder (exit status 1)."""


class DiskFullError(ChsError):
    """The disk holding the output folder is full (exit status 1)."""


def sweep_leftovers(out_dir: Path) -> list[Path]:
    """Remove the staging and old folders of runs that died before they finished; list them."""
    gone = [p for p in out_dir.iterdir() if p.is_dir() and _LEFTOVER.match(p.name)]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def is_disk_full(exc: BaseException) -> bool:
    """Return whether ``exc`` (an OSError, or a library's error wrapping one) means a full disk."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(marker in str(exc).lower() for marker in _FULL)


_NEARLY_FULL = 1 << 20  # bytes free below which a failed write is put down to a full disk


def _free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return _NEARLY_FULL  # cannot tell: not "full"
    return st.f_bavail * st.f_frsize


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock for the block; fail at once when another process holds it."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        f = (out_dir / LOCK_FILE).open("a+")
    except OSError as err:
        raise ChsError(f"Output folder {out_dir} cannot be written: {err.strerror}.") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunLockedError(
                f"Another chs run or backfill is writing {out_dir} ({holder}); "
                "run this one again once it has finished."
            ) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(
                f"process {os.getpid()} `{' '.join(sys.argv[1:3])}` since "
                f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
            )
            f.flush()
        except OSError:
            pass  # the note is for people; the lock itself holds
        sweep_leftovers(out_dir)
        try:
            yield
        except Exception as err:
            # a library may word ENOSPC its own way (Polars' parquet writer: "Invalid thrift:
            # transport error"), so a disk with almost nothing left counts too, measured
            # before the sweep frees the dead staging folder
            full = is_disk_full(err) or _free_bytes(out_dir) < _NEARLY_FULL
            sweep_leftovers(out_dir)
            if full and not isinstance(err, ChsError):
                raise DiskFullError(
                    f"The disk holding {out_dir} is full, so this run stopped; the dates it had "
                    "not finished are as they were. Free some space and run it again."
                ) from err
            raise
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
