"""3. How the records measure latency: `helpers.evaluate.latency_ms` (a record's
`inference_ms_per_image`: the median of direct calls of a compiled function on one image, after
warm-up) against a bare `tf.function` of the same model timed the same way, and against
`model.predict` on one image (the articles' way; its first call, which builds the predict function,
is shown apart). Each backbone's notebook-04 classifier at 224x224, random weights; the records' way
and the bare function are measured in alternating ROUNDS, so that load from other processes falls on
both alike, and each figure is the median of its rounds.
"""

from __future__ import annotations

import statistics

import numpy as np
import tensorflow as tf

from benchmarks import common
from helpers import evaluate
from helpers.progress import quiet_stderr

NAME, BUDGET, ROUNDS, SIZE = "latency", 100, 2, 224
MODELS = ("mobilenet", "mobilenet_v2", "efficientnetv2_b0", "resnet50")


def _median_ms(call, seconds: float = 1.5) -> float:
    """As `evaluate.latency_ms` times: the median of up to 100 calls within `seconds`, after 5."""
    return 1000 * statistics.median(evaluate.call_times(call, repeats=100, warmup=5, max_seconds=seconds,
                                                        at_least=5))


def measure(name: str, size: int) -> dict:
    model, _ = common.shared_classifier(name, size)
    bare = tf.function(lambda x: model(x, training=False))
    one = tf.random.uniform((1, size, size, 3), 0, 255, seed=0)
    ours, plain = [], []
    for _ in range(ROUNDS):
        ours.append(evaluate.latency_ms(model))
        plain.append(_median_ms(lambda: np.asarray(bare(one))))
    image = one.numpy()
    with quiet_stderr():  # tf.data's C++ warning about an attribute, once per predict function
        _, first_predict = common.timed(lambda: model.predict(image, verbose=0))
        predict = _median_ms(lambda: model.predict(image, verbose=0), seconds=2)
    row = {"model": name, "image_size": size, "records_ms": statistics.median(ours),
           "bare_tf_function_ms": statistics.median(plain), "predict_ms": predict,
           "first_predict_ms": 1000 * first_predict, "records_rounds_ms": ours, "bare_rounds_ms": plain}
    row["records_over_bare"] = row["records_ms"] / row["bare_tf_function_ms"]
    row["predict_over_records"] = predict / row["records_ms"]
    return row


def run(quick: bool = False) -> dict:
    size = 96 if quick else SIZE
    part = common.Part(NAME, f"3. Batch-1 latency, {size}x{size}: the records' evaluate.latency_ms against a "
                             "bare tf.function and model.predict on one image (tracing excluded)", BUDGET)
    for name in MODELS[:1] if quick else MODELS:
        if part.allows(name):
            r = measure(name, size)
            part.add(r, f"{name}: records {r['records_ms']:.1f} ms, bare tf.function {r['bare_tf_function_ms']:.1f} "
                        f"ms (records/bare {r['records_over_bare']:.2f}); model.predict {r['predict_ms']:.1f} ms "
                        f"({r['predict_over_records']:.1f}x the records'; its first call {r['first_predict_ms']:.0f} ms)")
    part.write(image_size=size, rounds=ROUNDS,
               included="median ms per call after warm-up (tracing excluded), median of alternating rounds")
    return {"rows": part.rows}
