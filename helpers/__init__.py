"""Shared helpers of the transfer-learning course, one module per concern."""

import os

# Quieten TensorFlow's C++ start-up chatter before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
