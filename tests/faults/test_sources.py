"""A source file rewritten while it is read: neither the run nor the extraction cache may take
the half-written file.

The writer is real file I/O on the demo's outcomes export; it acts at a fixed point of the read
(it truncates and half-writes the file as the read starts, finishes as it ends), so the case is
deterministic. Afterwards the original export is put back with its original size and
modification time (``cp -p`` of a saved copy): a cache entry keyed by that fingerprint must hold
what the file holds.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

from tasks.config import load_config
from tasks.sources import cache
from tasks.sources.cache import ExtractCache, extract_cached
from tasks.sources.plan import Window
from tests.conftest import DEMO_END

RUN = datetime.combine(DEMO_END, datetime.min.time()).replace(hour=23)


def test_a_file_rewritten_during_the_read_is_read_again_and_never_cached_half(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(demo / "chs.toml")
    window = Window(DEMO_END, RUN)
    path = demo / "outcomes.jsonl"
    v1 = path.read_bytes()
    v1_stat = path.stat()
    lines = v1.splitlines(keepends=True)
    v2 = b"".join(lines[: len(lines) * 2 // 3])  # tomorrow's export: fewer outcomes
    # what is on disk while the export is being written: whole lines, so it parses (the
    # silent case; a cut mid-line fails the read, and is read again too)
    half = b"".join(lines[: len(lines) // 3])
    expected_v1, _ = extract_cached("outcomes", cfg, window, None)

    real = cache.read_typed
    calls: list[int] = []

    def read_while_rewritten(*args: Any) -> Any:
        calls.append(len(calls))
        if len(calls) > 1:
            return real(*args)
        path.write_bytes(half)  # the writer has truncated the file and written half
        try:
            return real(*args)
        finally:
            path.write_bytes(v2)  # ... and finishes while the read ends

    store = ExtractCache(demo / "out" / ".cache" / "extract")
    monkeypatch.setattr(cache, "read_typed", read_while_rewritten)
    got, hit = extract_cached("outcomes", cfg, window, store)
    monkeypatch.setattr(cache, "read_typed", real)
    assert not hit
    assert len(calls) == 2  # the change was seen and the file read again
    expected_v2, _ = extract_cached("outcomes", cfg, window, None)
    assert_frame_equal(got, expected_v2)

    again, hit = extract_cached("outcomes", cfg, window, store)
    assert hit
    assert_frame_equal(again, expected_v2)

    path.write_bytes(v1)  # the original export is put back, size and time included
    os.utime(path, ns=(v1_stat.st_atime_ns, v1_stat.st_mtime_ns))
    restored, _ = extract_cached("outcomes", cfg, window, store)
    assert_frame_equal(restored, expected_v1)
