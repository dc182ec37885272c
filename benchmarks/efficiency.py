"""4. Forward throughput as a fraction of this machine's limit.

The limit: a 4096x4096 float32 matmul in TensorFlow (2 n^3 FLOPs per call). A path's
fraction: images/s x the backbone's GFLOPs per image / the limit. GFLOPs per image are
counted by TensorFlow's profiler on the traced graph (2 FLOPs per multiply-add) and shown
next to the published figure scaled to the image size (`helpers.backbones`: paper_gflops_224,
paper_source).

Paths, at batch 32, 224x224, random weights, after warm-up (tracing excluded), best of
alternating rounds (other processes only ever slow a run down):
- bare: a plain `tf.function` of the Keras backbone alone;
- inference: `helpers.evaluate.throughput` on the whole classifier (preprocessing, base,
  pooling, head), the record's `throughput_images_per_s`;
- features: `helpers.cache.outputs` of the classifier's frozen part (`cache.split`: up to the
  pooled features) over in-memory uint8 images (the cached-feature path: the `tf.data`
  pipeline, the base, the copy of the features to numpy).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import common
from helpers import backbones, cache, data, evaluate

NAME = "efficiency"
BATCH = 32
ROUNDS = 3


def measure(name: str, size: int, images: int, limit: float) -> dict:
    model, base = common.classifier(name, size)
    frozen_part, _ = cache.split(model)
    gflops = common.gflops_per_image(base)
    bare = common.bare_function(base)
    x = common.pixels(BATCH, size)
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    examples = data.examples_from_arrays(stored, np.arange(images) % 5)

    bare(x).numpy()  # traces
    cache.outputs(frozen_part, examples.take(2), BATCH)  # traces the feature function
    rates: dict[str, list[float]] = {"bare": [], "inference": [], "features": []}
    for _ in range(ROUNDS):
        times = common.call_times(lambda: bare(x).numpy(), repeats=2, warmup=0)
        rates["bare"].append(BATCH / min(times))
        rates["inference"].append(evaluate.throughput(model, batch_size=BATCH, repeats=1))
        _, seconds = common.timed(lambda: cache.outputs(frozen_part, examples, BATCH))
        rates["features"].append(images / seconds)
    row = {"model": name, "image_size": size, "gflops_per_image": gflops,
           "paper_gflops_per_image": common.paper_gflops(name, size),
           "paper_source": backbones.get(name).paper_source}
    for path, values in rates.items():
        row[f"{path}_images_per_s"] = max(values)
        row[f"{path}_fraction"] = max(values) * gflops / limit
    return row


def run(quick: bool = False) -> dict:
    started, load = time.perf_counter(), common.load_average()
    common.device()
    peak = common.machine_gflops(n=1024 if quick else 4096)
    limit = peak["best"]
    names, size, images = (("mobilenet_v2",), 96, 64) if quick else (common.BACKBONES, common.SIZE, 96)
    rows = [measure(name, size, images, limit) for name in names]
    common.table(
        f"4. Forward throughput at batch {BATCH} as a fraction of this machine's limit: "
        f"{limit:.0f} GFLOP/s (float32 matmul n={peak['n']}, best of 7; median {peak['median']:.0f})",
        [("model", "model", ""), ("image_size", "size", "d"),
         ("gflops_per_image", "GFLOPs/img", ".2f"), ("paper_gflops_per_image", "paper", ".2f"),
         ("bare_images_per_s", "bare img/s", ".1f"), ("bare_fraction", "bare", ".0%"),
         ("inference_images_per_s", "inference img/s", ".1f"),
         ("inference_fraction", "inference", ".0%"),
         ("features_images_per_s", "features img/s", ".1f"),
         ("features_fraction", "features", ".0%")],
        rows,
        ["GFLOPs/img: TensorFlow's profiler on the backbone's graph; paper: the published "
         "multiply-adds x 2, scaled with the square of the side",
         "bare: tf.function of the backbone; inference: helpers.evaluate.throughput of the "
         f"classifier; features: helpers.cache.outputs of its frozen part over {images} in-memory images",
         f"best of {ROUNDS} alternating rounds after warm-up"],
    )
    report = {"machine_gflops": peak, "limit_gflops": limit, "batch_size": BATCH, "rows": rows,
              "included": "best of alternating rounds after warm-up (tracing excluded)"}
    common.write_report(NAME, report, started, load)
    return report


if __name__ == "__main__":
    common.main(run)
