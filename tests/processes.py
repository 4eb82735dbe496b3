"""Which processes a test session left running: its children, and orphans that carry its mark.

``tests/conftest.py`` puts a unique ``CHS_TEST_SESSION`` in the environment, so every process
the tests start inherits it, even one whose parent died and that the kernel handed to init.
Read from ``/proc`` (Linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

MARK = "CHS_TEST_SESSION"
# helpers of Python's multiprocessing that read a pipe from this interpreter and end with it
DIE_WITH_SESSION = (
    "from multiprocessing.resource_tracker import main",
    "from multiprocessing.forkserver import main",
)


def _ppid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _marked(pid: int, mark: str) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{MARK}={mark}".encode() in env


def command_line(pid: int) -> str:
    """Return the process's command line, or its name when it has none."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace").strip() or f"[pid {pid}]"
    except OSError:
        return f"[pid {pid}, gone]"


def survivors(mark: str, root: int | None = None) -> list[int]:
    """Return the live descendants of ``root`` (default: this process) and every other live
    process whose environment carries ``CHS_TEST_SESSION=mark``.
    """
    root = os.getpid() if root is None else root
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    parent = {pid: _ppid(pid) for pid in pids}
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, pp in parent.items() if pp in frontier} - found
        found |= frontier
    found |= {pid for pid in pids if pid != root and _marked(pid, mark)}
    found.discard(root)
    return sorted(
        pid
        for pid in found
        if _state(pid) not in ("Z", "X")
        and not any(helper in command_line(pid) for helper in DIE_WITH_SESSION)
    )


def wait_gone(mark: str, seconds: float) -> list[int]:
    """Give exiting processes up to ``seconds`` to finish; return those still alive."""
    deadline = time.monotonic() + seconds
    left = survivors(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = survivors(mark)
    return left


def kill_all(pids: list[int]) -> None:
    """SIGKILL the given processes (those already gone are skipped)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
