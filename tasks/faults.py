"""Test-only fault injection: ``CHS_FAULT_AT`` makes the process stop dead at a named stage.

The fault-injection suite (``tests/faults/``) sets it to kill a ``chs`` process at a precise
point, so that what a crash leaves behind can be checked. Nobody else should set it. The value
is ``stage``, ``stage@N`` (the N-th time the stage starts in this process, e.g. the third date
of a backfill) and optionally ``:stop`` (the process stops itself with SIGSTOP instead of
SIGKILL, so that a test can break something around it and then let it continue). Stages:
``after-extract``, ``validate``, ``render``, ``store`` (inside the history transaction),
``publish`` (history committed, the files not yet swapped in) and ``deliver`` (after the first
message was accepted and recorded).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "CHS_FAULT_AT"
_seen: Counter[str] = Counter()
_guard = threading.Lock()


def fault_point(stage: str) -> None:
    """Kill (or stop) this process here when ``CHS_FAULT_AT`` names this stage; else nothing."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    where, _, action = spec.partition(":")
    name, _, nth = where.partition("@")
    if name != stage:
        return
    with _guard:
        _seen[stage] += 1
        count = _seen[stage]
    if count != int(nth or 1):
        return
    os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)
