"""Shared helpers of the transfer-learning course: what the notebooks call besides Keras, one job
per module. Importing the package starts TensorFlow with its start-up lines hidden."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers.progress import quiet_stderr  # noqa: E402

with quiet_stderr():  # TensorFlow's start-up lines and, without a GPU, its CUDA probe
    import tensorflow as _tf

    _tf.config.list_physical_devices()

__version__ = "0.2.0"
