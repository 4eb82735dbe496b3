"""``@step``: a Prefect task whose arguments Prefect does not walk through.

Before a task runs, Prefect visits every element of every argument twice (to record which
task runs it came from, and to resolve futures in it): each list, dict, dataclass and
pydantic model, element by element, in Python. Our steps take the validated datasets, the
history, the report's context and the page plan, which hold lists and dicts with an entry per
account; at 100,000 accounts that walk cost more than the steps themselves (about 250 s of a
weekly run on a busy 2-core machine). A step's arguments are plain values, never futures, so
each is wrapped in Prefect's ``opaque``: Prefect still looks at the argument itself, and the
task receives it unwrapped, but nothing inside it is visited.

Only direct calls are wrapped; ``.submit`` (a future may be passed on, and a Dask worker
unpickles the parameters) is Prefect's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task
from prefect.utilities.annotations import opaque

P = ParamSpec("P")
R = TypeVar("R")


class Step(Task[P, R]):
    """A task whose direct calls pass every argument to Prefect as ``opaque``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task as Prefect does, without Prefect visiting inside the arguments."""
        control = {k: kwargs.pop(k) for k in ("return_state", "wait_for") if k in kwargs}
        wrapped = {k: opaque(v) for k, v in kwargs.items()}
        run: Any = super().__call__  # Task's overloads are typed by P; these are wrapped
        return run(*(opaque(a) for a in args), **control, **wrapped)


def step(**options: Any) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Decorate a function as a :class:`Step`, with ``@task``'s options."""

    def make(fn: Callable[P, R]) -> Task[P, R]:
        return Step(fn=fn, **options)

    return make
