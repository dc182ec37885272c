"""The setup cell every notebook opens with: versions, hardware, one-sentence errors."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import warnings
from importlib import metadata

from helpers.config import CourseError, project_root

COURSE_REPO = "https://github.com/tl-course/transfer-learning-course"
PINNED = ("tensorflow", "keras", "tensorflow-datasets", "plotnine", "pandas", "scikit-learn")


def pinned_versions() -> dict[str, str]:
    """Exact pins from requirements.txt (empty when it is not beside the package)."""
    path = project_root() / "requirements.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    matches = [re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)", line) for line in lines]
    return {match.group(1).lower(): match.group(2) for match in matches if match}


def _short_errors() -> None:
    """Show CourseError as its one-sentence message; the cell still fails, so papermill stops."""
    try:
        ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return

    def show(shell, etype, value, tb, tb_offset=None):
        short = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, short)  # publish it as the cell's error
        return short

    ip.set_custom_exc((CourseError,), show)


@contextlib.contextmanager
def quiet_stderr():
    """Hide what C++ libraries (TensorFlow at start-up) print on file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check(profile: str | None = None) -> None:
    """Print versions and hardware, and make the course's errors one sentence long."""
    with quiet_stderr():
        import keras
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    lines = [f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
             f"Keras {keras.__version__}"]
    pins, differ = pinned_versions(), []
    for package in PINNED:
        try:
            have = metadata.version(package)
        except metadata.PackageNotFoundError:
            have = None
        want = pins.get(package)
        if want and have and have != want:
            differ.append(f"{package} {have} (tested with {want})")
        elif want and not have:
            differ.append(f"{package} missing (pip install {package}=={want})")
    if differ:
        lines.append("Versions that differ from requirements.txt: " + "; ".join(differ))
    if gpus:
        lines.append(f"GPU: {len(gpus)} found; mixed precision and XLA are on by default, and "
                     "PROFILE = 'auto' runs the full profile.")
    else:
        lines.append("No GPU found: PROFILE = 'auto' runs the laptop profile (the real data, sized "
                     "for a CPU); 'smoke' runs offline in minutes; 'full' wants a GPU.")
    if "google.colab" in sys.modules:
        lines.append("Running on Google Colab.")
    print("\n".join(lines))
    # fit warns that shuffle=True is ignored on tf.data; the pipelines shuffle with the seed
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    _short_errors()
