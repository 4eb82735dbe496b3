"""The PostgreSQL history server stops in the middle of a run's history transaction.

A private throw-away cluster (initdb into a temporary folder, run as the ``postgres`` user on
a free port) is stopped and started by the test; the system cluster on 5432 is never touched.
Down for good: one sentence, nothing of the date stored or published, a re-run completes once
the server is back. Restarted while the run waits: the store's retry finishes the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest

from flows.cli.main import main
from flows.server import free_port
from tests.conftest import DEMO_END
from tests.faults.conftest import wait_stopped

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
BIN = sorted(str(p) for p in Path("/usr/lib/postgresql").glob("*/bin"))


@dataclass
class Cluster:
    """A private PostgreSQL cluster: its folder, port and pg_ctl."""

    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        opts = f"-k {self.data} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        cmd = [f"{BIN[-1]}/pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w"]
        cmd += ["-o", opts, *args]
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True)

    def start(self) -> None:
        self.ctl("start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")

    def rows(self, day: Any) -> dict[str, int]:
        with psycopg.connect(self.url) as con:
            return {
                t: con.execute(f"select count(*) from {t} where as_of = %s", [day]).fetchone()[0]  # type: ignore[index]
                for t in ("run_history", "score_history", "measure_history", "kpi_history")
            }


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Initialise and start a private cluster; stop and remove it after the test."""
    if not BIN or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs PostgreSQL's server binaries and root (to run them as postgres)")
    folder = Path(tempfile.mkdtemp(prefix="chs-faults-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    c = Cluster(folder / "data", free_port())
    subprocess.run(
        ["runuser", "-u", "postgres", "--", f"{BIN[-1]}/initdb", "-D", str(c.data)]
        + ["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    c.start()
    try:
        yield c
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", f"{BIN[-1]}/pg_ctl", "-D", str(c.data)]
            + ["-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("restarted", [False, True], ids=["down", "restarted"])
def test_postgres_history_stopped_mid_transaction(
    restarted: bool, demo: Path, cluster: Cluster, chs_started: Any
) -> None:
    config = demo / "chs.toml"
    text = config.read_text().replace(
        'history = "duckdb:///out/history.duckdb"', f'history = "{cluster.url}"'
    )
    config.write_text(text)
    day = DEMO_END.isoformat()
    # stops itself inside the history transaction, after half the tables were written
    proc = chs_started(
        "run", "--config", str(config), "--as-of", day, env={"CHS_FAULT_AT": "store:stop"}
    )
    wait_stopped(proc)
    cluster.stop()
    if restarted:
        cluster.start()
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=240)
    out = demo / "out" / day
    if restarted:  # the store's retry wrote the date once the server was back
        assert proc.returncode == 0, err[-2000:]
        assert out.is_dir()
        assert cluster.rows(DEMO_END)["run_history"] == 1
        return
    assert proc.returncode == 1, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("chs: ")]
    assert len(lines) == 1, err[-2000:]
    assert lines[0].startswith(f"chs: error: History store {cluster.url} cannot be opened:")
    assert "Traceback" not in err
    assert not out.exists()
    assert not list((demo / "out").glob(".*staging*"))
    cluster.start()
    assert set(cluster.rows(DEMO_END).values()) == {0}  # the transaction left nothing

    assert main(["run", "--config", str(config), "--as-of", day]) == 0  # the re-run
    rows = cluster.rows(DEMO_END)
    assert rows["run_history"] == 1
    assert rows["score_history"] == pl.read_parquet(out / "scores.parquet").height
