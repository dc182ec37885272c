"""Shared helpers of the transfer-learning course.

Data flows one way through the modules: config, data, models, finetune, train,
evaluate, then results and plots. `experiment` runs one configuration through
that chain, `run` executes the notebooks, `setup` checks the environment.
"""

import os

# Quieten TensorFlow's C++ start-up chatter before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
