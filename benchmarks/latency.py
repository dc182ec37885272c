"""2. Latency at batch 1 and throughput at a large batch, for every backbone.

For each classifier (backbone + GAP + Dense, random weights, 224x224):
- ours: `helpers.evaluate.latency_ms` (the record's `inference_ms_per_image`: median of
  direct calls of the compiled model after warm-up);
- bare: the median of calls of a plain `tf.function(lambda x: model(x, training=False))`;
- predict: the median of per-image `model.predict(x, verbose=0)` calls after the first
  (the articles' way; the first call, which builds the predict function, is shown apart);
- throughput at batch 64: `helpers.evaluate.throughput` against the bare function.

Tracing is excluded everywhere (each path is warmed up first). Ours and bare are measured
in alternating rounds, so load from other processes falls on both alike.
"""

from __future__ import annotations

import time

from benchmarks import common
from helpers import evaluate

NAME = "latency"
ROUNDS = 3
BATCH = 64


def measure(name: str, size: int) -> dict:
    model, _ = common.classifier(name, size)
    bare = common.bare_function(model)
    one, many = common.pixels(1, size), common.pixels(BATCH, size)
    one_numpy = one.numpy()

    # As in a result record: by the time latency is measured, the compiled function has seen
    # more than one batch size (there, the test set's batches), so it runs a relaxed trace.
    bare(many).numpy()  # traces bare at the large batch; evaluate.throughput warms itself up
    ours_rate, plain_rate = [], []
    for _ in range(2):
        ours_rate.append(evaluate.throughput(model, batch_size=BATCH, repeats=1, max_seconds=10))
        plain_rate.append(BATCH / common.call_times(lambda: bare(many).numpy(), repeats=1,
                                                    warmup=0, min_repeats=1)[0])
    evaluate.latency_ms(model, repeats=3, warmup=2)
    ours, plain = [], []
    for _ in range(ROUNDS):
        ours.append(evaluate.latency_ms(model, repeats=20, warmup=1, max_seconds=3))
        plain.append(1000 * common.median(common.call_times(
            lambda: bare(one).numpy(), repeats=20, warmup=1, max_seconds=3, min_repeats=5)))
    _, first_predict = common.timed(lambda: model.predict(one_numpy, verbose=0))
    predict = common.call_times(lambda: model.predict(one_numpy, verbose=0), repeats=10,
                                warmup=1, max_seconds=2, min_repeats=5)

    row = {
        "model": name, "image_size": size,
        "ours_ms": common.median(ours), "bare_ms": common.median(plain),
        "predict_ms": 1000 * common.median(predict), "predict_first_ms": 1000 * first_predict,
        "ours_images_per_s": max(ours_rate), "bare_images_per_s": max(plain_rate),
    }
    row["ours_over_bare"] = row["ours_ms"] / row["bare_ms"]
    row["predict_over_ours"] = row["predict_ms"] / row["ours_ms"]
    row["throughput_ours_over_bare"] = row["ours_images_per_s"] / row["bare_images_per_s"]
    return row


def run(quick: bool = False) -> dict:
    started, load = time.perf_counter(), common.load_average()
    common.device()
    names, size = (("mobilenet_v2",), 96) if quick else (common.BACKBONES, common.SIZE)
    rows = [measure(name, size) for name in names]
    common.table(
        f"2. Batch-1 latency and batch-{BATCH} throughput (classifier = backbone + GAP + Dense, "
        "tracing excluded)",
        [("model", "model", ""), ("image_size", "size", "d"), ("ours_ms", "ours ms", ".1f"),
         ("bare_ms", "bare tf.function ms", ".1f"), ("ours_over_bare", "ours/bare", ".2f"),
         ("predict_ms", "predict ms", ".1f"), ("predict_first_ms", "1st predict ms", ".0f"),
         ("predict_over_ours", "predict/ours", ".1f"),
         ("ours_images_per_s", f"ours img/s @{BATCH}", ".1f"),
         ("bare_images_per_s", f"bare img/s @{BATCH}", ".1f"),
         ("throughput_ours_over_bare", "ours/bare", ".2f")],
        rows,
        ["ours: helpers.evaluate.latency_ms / .throughput (the record's figures); bare: a plain "
         "tf.function of the same model, timed the same way",
         f"latency: median of {ROUNDS} alternating rounds of 20 calls; throughput: best of 2 "
         "alternating calls after warm-up; predict: per-image model.predict after its first call"],
    )
    report = {"batch_size": BATCH, "rows": rows,
              "included": "median wall time per call, after warm-up (tracing excluded)"}
    common.write_report(NAME, report, started, load)
    return report


if __name__ == "__main__":
    common.main(run)
