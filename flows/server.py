"""A local Prefect server on loopback, started and stopped around a block of work.

The integration test and the benchmark use it; so can anyone who wants runs without the
temporary API server that every `chs` process otherwise starts (``TemporaryApi``, below).
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(
    url: str, proc: subprocess.Popen[bytes], seconds: float, pause: float = 0.5
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(pause)
    raise TimeoutError(f"prefect server at {url} did not become healthy in {seconds:.0f} s")


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """Have Linux send SIGTERM to this child when its parent dies, even by SIGKILL or the OOM
    killer, so a killed ``chs`` never leaves its server running (runs in the child).
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a quiet background process in its own session (``stop_process`` stops it whole);
    it ends with the process that started it.
    """
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, and everything it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def local_server(home: Path, wait_s: float = 90) -> Iterator[dict[str, str]]:
    """Run `prefect server start` on a free loopback port with its own PREFECT_HOME.

    Yields the environment for processes that should use it (PREFECT_API_URL set); the server
    is stopped when the block ends.
    """
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    cmd = [str(Path(sys.executable).parent / "prefect"), "server", "start"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    proc = spawn(cmd, env)
    try:
        _wait_healthy(api, proc, wait_s)
        yield env
    finally:
        stop_process(proc)


class TemporaryApi:
    """Prefect's temporary API server, started as early as the command line knows it needs one.

    Without ``PREFECT_API_URL`` Prefect starts the same server itself on the flow's first API
    call, after our imports, and waits for it (about 5 s, half of it importing the server into
    this process just to spawn it). Started here it comes up in its own process while this one
    imports the flows. The command is Prefect's own (``SubprocessASGIServer`` in
    ``prefect.server.api.server``, Prefect 3.8): uvicorn serving ``create_app`` with the UI off.
    If it does not come up, nothing is set and Prefect starts its own server as before.
    """

    ENV = {
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }

    def __init__(self) -> None:
        spec = importlib.util.find_spec("prefect")  # not imported: this may run before Prefect
        if spec is None or spec.origin is None:
            raise RuntimeError("prefect is not installed")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(spec.origin).parent.parent),
        ]
        cmd += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
        self.proc = spawn(cmd, {**os.environ, **self.ENV})
        atexit.register(self.stop)

    @staticmethod
    def needed() -> bool:
        """Return True when runs would otherwise start Prefect's temporary server (no API set)."""
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE

        return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value())

    def ready(self, seconds: float) -> bool:
        """Wait for the server to answer; False when it exited or did not answer in time."""
        try:
            _wait_healthy(self.url, self.proc, seconds, pause=0.05)
        except (RuntimeError, TimeoutError):
            return False
        return True

    def activate(self, seconds: float = 60) -> None:
        """Point Prefect at this server for the rest of the process, once it answers.

        The server stops when the process exits (``atexit``, registered before Prefect's own
        exit hooks, so its log and event workers still reach it while they drain). If it did
        not come up (e.g. the port was taken meanwhile), Prefect starts its own server.
        """
        from prefect.settings import PREFECT_API_URL, temporary_settings

        log = logging.getLogger("prefect")
        if self.ready(seconds):
            log.info(
                "Using a temporary server on http://127.0.0.1:%d (PREFECT_API_URL is not set)",
                self.port,
            )
            # entered and never left (the object is kept: collecting it would leave the block):
            # a block that ended before the process would let Prefect's workers create clients
            # without the URL
            self._settings = temporary_settings(updates={PREFECT_API_URL: self.url})
            self._settings.__enter__()
        else:
            log.warning("The temporary server did not start; Prefect starts its own.")
            self.stop()

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self.proc.poll() is None:
            logging.getLogger("prefect").info("Stopping temporary server on %s", self.url)
        stop_process(self.proc)
