"""Speed measurements of the helpers, run by `make bench` (never by the tests).

`python -m benchmarks` runs all five in one process (models and compiled functions are
shared between them); `python -m benchmarks.<name>` runs one. Each prints a table and
writes its figures to reports/bench/<name>.json.

- cached_features: the frozen phase on cached features against end to end
- latency: batch-1 latency (ours, per-image predict, a bare tf.function) and throughput
- training: images/s of the helpers' fit against a bare model.fit
- efficiency: forward throughput as a fraction of this machine's matmul GFLOP/s
- prefix: fine-tuning per strategy on the cached frozen part against end to end
"""

BENCHMARKS = ("cached_features", "latency", "training", "efficiency", "prefix")
