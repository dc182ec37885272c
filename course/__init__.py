"""The course's shell commands (`python -m course.run`, `course.predict`): never imported by helpers.
Importing helpers first starts TensorFlow with its start-up lines and CUDA probe hidden."""

import helpers  # noqa: F401
