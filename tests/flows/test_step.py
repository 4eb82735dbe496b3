"""``flows.step``: Prefect hands a step its arguments without walking them, futures resolved.

The tasks here have no cache policy, as every step of the flows: a cache key hashes the inputs.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow, task
from prefect.cache_policies import NONE

from flows.step import step


class CountingDict(dict[str, Any]):
    """A dict that counts how often something walks its items (Prefect's visit_collection)."""

    walks = 0

    def items(self) -> Any:
        """Count the walk, then return the items."""
        CountingDict.walks += 1
        return super().items()


@step(name="takes-a-dict", cache_policy=NONE)
def takes(data: dict[str, Any], extra: list[int]) -> int:
    """Return how many keys the dict has, plus the list's sum."""
    return len(data) + sum(extra)


@task(name="plain-takes-a-dict", cache_policy=NONE)
def plain_takes(data: dict[str, Any]) -> int:
    """The same as ``takes``, as a plain Prefect task."""
    return len(data)


@step(name="one")
def one() -> int:
    """Return 1."""
    return 1


@step(name="add")
def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


@pytest.mark.usefixtures("prefect_harness")
def test_a_step_is_handed_its_arguments_unwalked() -> None:
    nested = CountingDict(a=CountingDict(b=1), c=2)
    seen: dict[str, Any] = {}

    @flow
    def run() -> tuple[int, int]:
        CountingDict.walks = 0
        got = takes(nested, extra=[1, 2])
        seen["step"] = CountingDict.walks
        CountingDict.walks = 0
        plain = plain_takes(nested)
        seen["plain"] = CountingDict.walks
        return got, plain

    assert run() == (2 + 3, 2)
    assert seen["step"] == 0
    assert seen["plain"] > 0  # a plain task walks the dict: the check can fail


@pytest.mark.usefixtures("prefect_harness")
def test_a_future_passed_to_a_step_is_resolved() -> None:
    @flow
    def run() -> int:
        first = one.submit()
        later = add.submit(first, 41)  # a future among the arguments: waited for, then passed
        return later.result() + add(first, b=first)

    assert run() == 42 + 2


@pytest.mark.usefixtures("prefect_harness")
def test_return_state_is_still_prefects_keyword() -> None:
    @flow
    def run() -> bool:
        state = one(return_state=True)
        return bool(state.is_completed() and state.result() == 1)

    assert run()
