"""Running a progress generator to its end."""

from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")


def finish(steps: Generator[object, None, T]) -> T:
    """Exhaust a generator that yields progress and return its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
