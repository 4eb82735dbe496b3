"""The temporary API server dies with the process that started it, whatever kills that."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = """
import sys, time
from flows.server import TemporaryApi
api = TemporaryApi()
print(api.proc.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has exited


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_sigkill_of_chs_takes_its_temporary_server_with_it() -> None:
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    server = int(parent.stdout.readline())
    try:
        assert _alive(server)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20  # SIGTERM, then uvicorn's own shutdown
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server)
    finally:
        parent.stdout.close()
        if _alive(server):
            os.killpg(server, signal.SIGKILL)
