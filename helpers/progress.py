"""What every notebook shows while it works: progress bars on the slow steps (none when headless,
$COURSE_HEADLESS=1), and nothing of what C++ libraries print at start-up."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from helpers.settings import env_flag

T = TypeVar("T")


def headless() -> bool:
    """True when nobody watches the output as it is written ($COURSE_HEADLESS; notebooks 01-05, "Setup")."""
    return env_flag("COURSE_HEADLESS")


def bar(items: Iterable[T], total: int | None = None, what: str = "") -> Iterator[T]:
    """`items` with a progress bar, none when headless (the data of 01, 02, 04; 04, "Train only what trains")."""
    if headless():
        yield from items
        return
    from tqdm.auto import tqdm
    yield from tqdm(items, total=total, desc=what, leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def quiet_stderr():
    """Hide what C++ libraries print on file descriptor 2: TensorFlow's start-up and CUDA probe ("Setup"),
    the LiteRT converter and interpreter (notebook 07, "Converting", "Running them in LiteRT")."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
