"""Speed measurements, never run by the tests: `make bench` (`python -m benchmarks`) runs the four
below in one process within ten minutes on two CPU cores, each within its own time budget, and each
writes reports/bench/<name>.json; `make bench-laptop` (`python -m benchmarks.laptop`) times every
notebook's laptop profile and checks the estimate `calibration` gives for it.

- features: the head on features computed once (notebook 02) against model.fit through the base
- cached_part: fine-tuning on the cached frozen part (notebook 04) against end to end
- latency: the records' batch-1 latency against a bare tf.function and model.predict
- efficiency: GFLOP/s at inference and computing features, as a share of this machine's matmul limit
"""

import helpers  # noqa: F401  (starts TensorFlow with its start-up lines hidden)

BENCHMARKS = ("features", "cached_part", "latency", "efficiency")
