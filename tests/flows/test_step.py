"""``@step``: Prefect runs the task with its arguments as given, without walking inside them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect import Task, flow, task
from prefect.utilities import collections

from flows.step import step


@dataclass
class Held:
    """An argument with a list inside, as the steps' datasets and report context have."""

    rows: list[dict[str, int]] = field(default_factory=list)


received: list[tuple[Any, ...]] = []


def _keep(held: Held, extra: dict[str, Any], *, flag: bool = False) -> None:
    received.append((held, extra, flag))


as_step = step(name="keep-step")(_keep)
as_task = task(name="keep-task")(_keep)


def _run(kind: Task[..., None]) -> bool:
    @flow(name="step-test")
    def body() -> bool:  # the data are made inside: the flow's own parameters are visited too
        held, extra = Held([{"row": i} for i in range(500)]), {"k": [1, 2, 3]}
        kind(held, extra=extra, flag=True)
        got = received[-1]
        return got[0] is held and got[1] is extra and got[2] is True

    return body()


def _rows_visited(monkeypatch: pytest.MonkeyPatch, kind: Task[..., None]) -> tuple[bool, int]:
    seen: list[Any] = []
    real = collections.visit_collection

    def counting(expr: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(expr)
        return real(expr, *args, **kwargs)

    # visit_collection recurses through its module's global name: every nested visit counts
    monkeypatch.setattr(collections, "visit_collection", counting)
    same = _run(kind)
    return same, sum(1 for e in seen if isinstance(e, dict) and "row" in e)


@pytest.mark.usefixtures("prefect_harness")
def test_a_step_gets_its_own_arguments_and_prefect_visits_nothing_inside_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    same, visited = _rows_visited(monkeypatch, as_step)
    assert same
    assert visited == 0


@pytest.mark.usefixtures("prefect_harness")
def test_a_plain_task_has_every_row_of_its_arguments_visited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    same, visited = _rows_visited(monkeypatch, as_task)  # what @step saves, each call
    assert same
    assert visited >= 500
