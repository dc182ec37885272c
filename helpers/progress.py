"""Progress bars for the slow steps and how much `fit` prints; headless runs
($COURSE_HEADLESS=1) show no bars and one line per epoch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from helpers.config import env_flag

T = TypeVar("T")


def headless() -> bool:
    """True when nobody watches the output as it is written ($COURSE_HEADLESS)."""
    return env_flag("COURSE_HEADLESS")


def bar(items: Iterable[T], total: int | None = None, what: str = "") -> Iterator[T]:
    """`items`, with a progress bar while they are consumed (none when headless)."""
    if headless():
        yield from items
        return
    from tqdm.auto import tqdm
    yield from tqdm(items, total=total, desc=what, leave=False, dynamic_ncols=True)


def keras_verbose() -> int:
    """`verbose=` for `fit`: a bar within each epoch when watched, one line per epoch headless."""
    return 2 if headless() else 1
