"""``step``: Prefect's ``task`` decorator, for tasks whose arguments Prefect must not walk.

Before a task runs, Prefect visits every argument recursively (every list, dict, dataclass and
pydantic model inside it) looking for futures and states to wait on and to record as the
run's inputs. Our tasks take the config (a tree of pydantic models), dicts of validated
datasets, the report's context and the KPIs: at 10,000 accounts that walk was 13 of the 34 s
a 4-date backfill spent in its tasks, more than scoring. A step passes each argument to
Prefect as ``quote(value)`` (a future as ``opaque(future)``: waited for, then not walked),
so Prefect hands the function the same objects without visiting them.

What is lost is Prefect's record of which task's result fed which argument (the UI's
dependency arrows between tasks): our tasks pass values, not futures, so that record was
empty for them anyway, apart from ``store.submit`` in a backfill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import BaseAnnotation, opaque, quote
from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")

# Prefect's own keyword arguments of ``Task.__call__`` and ``Task.submit``: passed as they are
_ENGINE_KEYWORDS = frozenset({"return_state", "wait_for"})


def _wrapped(value: Any) -> Any:
    """Return ``value`` as Prefect should receive it: quoted, or opaque when it is a future."""
    if isinstance(value, BaseAnnotation):
        return value
    if isinstance(value, PrefectFuture):
        return opaque(value)
    return quote(value)


def _all_wrapped(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    keywords = {k: v if k in _ENGINE_KEYWORDS else _wrapped(v) for k, v in kwargs.items()}
    return tuple(_wrapped(a) for a in args), keywords


class Step(Task[P, R]):
    """A Prefect task that passes its arguments through without Prefect walking them."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:  # type: ignore[override]
        """Run the task (see ``prefect.Task.__call__``), its arguments quoted."""
        a, kw = _all_wrapped(args, kwargs)
        result: R = super().__call__(*a, **kw)
        return result

    def submit(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> PrefectFuture[R]:
        """Submit the task (see ``prefect.Task.submit``), its arguments quoted."""
        a, kw = _all_wrapped(args, kwargs)
        future: PrefectFuture[R] = super().submit(*a, **kw)
        return future


def step(**options: Any) -> Callable[[Callable[P, R]], Step[P, R]]:
    """Declare a task like ``@prefect.task(...)``, whose arguments Prefect does not walk."""

    def make(fn: Callable[P, R]) -> Step[P, R]:
        return Step(fn=fn, **options)

    return make
