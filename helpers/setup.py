"""The one setup call every notebook makes ("Setup"): versions and hardware, the parameters
checked and completed from the profile, the precision policy, and one-sentence errors."""

from __future__ import annotations

import ast
import inspect
import platform
import sys
import warnings

import keras
import tensorflow as tf
from IPython import get_ipython

from helpers import records
from helpers.errors import CourseError, SettingsError
from helpers.settings import Settings, has_gpu, resolve

COURSE_REPO = "https://github.com/tl-course/transfer-learning-course"
SETTINGS = set(inspect.signature(resolve).parameters) - {"notebook", "check_hardware"}


def _short_errors() -> None:
    """Show CourseError as its one-sentence message; the cell still fails, so papermill stops."""
    shell = get_ipython()
    if shell is None:
        return

    def show(shell, etype, value, tb, tb_offset=None):
        short = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, short)  # publish it as the cell's error
        return short

    shell.set_custom_exc((CourseError,), show)


def injected_names() -> list[str]:
    """The names papermill injected with -p (its "# Parameters" cell), else []: every notebook's "Setup"."""
    shell = get_ipython()
    cells = shell.user_ns.get("In", []) if shell is not None else []
    for source in reversed(cells):
        if source.lstrip().startswith("# Parameters"):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                return []
            return [t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
    return []


def parameters(namespace: dict) -> dict:
    """The parameters cell's values: every name it declares with a type (every notebook's "Setup")."""
    declared = namespace.get("__annotations__", {})
    unknown = [name for name in injected_names() if name not in declared]
    if unknown:
        raise SettingsError(f"This notebook has no parameter {', '.join(unknown)}; its parameters "
                            f"are {', '.join(declared)}.")
    return {name: namespace[name] for name in declared if name in namespace}


def versions() -> str:
    """Python, TensorFlow, Keras, and what the GPU or its absence means for PROFILE = 'auto' (01, "Setup")."""
    gpus = tf.config.list_physical_devices("GPU")
    where = " on Google Colab" if "google.colab" in sys.modules else ""
    return (f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}{where}\n"
            + (f"GPU: {len(gpus)} found; mixed precision on by default, PROFILE = 'auto' runs the full profile."
               if gpus else "No GPU found: PROFILE = 'auto' runs the laptop profile (the real data, sized for a "
                            "CPU); 'smoke' runs offline in minutes; 'full' wants a GPU."))


def start(notebook: str, namespace: dict) -> Settings:
    """Every notebook's "Setup": check the parameters cell (`namespace` is its `globals()`), fill what is
    None from the profile, set the precision policy (mixed float16 on a GPU, float32 with deterministic ops
    on a CPU), check that the results folder can be written, and print what this run will do."""
    _short_errors()
    print(versions())
    given = {name.lower(): value for name, value in parameters(namespace).items()
             if name.lower() in SETTINGS}
    settings = resolve(notebook, **given)
    reason = records.cannot_write(settings.record_dir)
    if reason:
        raise SettingsError(f"The results folder {settings.record_dir} cannot be written ({reason}); "
                            "set RESULTS_DIR to a folder you can write to.")
    gpu = has_gpu()
    mixed = gpu and settings.mixed_precision is not False
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if not gpu:
        tf.config.experimental.enable_op_determinism()
    # fit warns that shuffle=True is ignored on tf.data; the pipelines shuffle with the seed
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    tf.get_logger().setLevel("ERROR")  # not "5 out of the last 6 calls ... triggered retracing"
    print(settings.describe())
    return settings
