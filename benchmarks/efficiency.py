"""4. Efficiency: the GFLOP/s each backbone achieves at inference (`helpers.evaluate.throughput`, a
record's `throughput_images_per_s`, batch 32) and computing features (`helpers.cache.outputs` of the
classifier's frozen part over in-memory images: the pipeline, the base, the copy to numpy, and the
tracing that each call of `cache.outputs` does), as a share of the LIMIT: the fastest dense float32
matmul this machine reaches with what the course uses, TensorFlow's or NumPy's, best call.

GFLOPs per image: TensorFlow's profiler on the base's traced graph (2 FLOPs per multiply-add), the
published figure beside it (PAPER_GFLOPS_224, scaled with the square of the side). A share above
100% is marked, with the reason the table gives.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from benchmarks import calibration, common
from helpers import cache, evaluate, pipelines

NAME, BUDGET, SIZE, IMAGES = "efficiency", 100, 224, 64
MODELS = ("mobilenet", "mobilenet_v2", "efficientnetv2_b0", "resnet50")
# The published forward cost at 224x224: 2 x the multiply-adds (GFLOPs per image), and the source.
PAPER_GFLOPS_224 = {
    "resnet50": (2 * 3.8, "He et al. 2016, Table 1"),
    "mobilenet": (2 * 0.569, "Howard et al. 2017, Table 8"),
    "mobilenet_v2": (2 * 0.300, "Sandler et al. 2018, Table 4"),
    "efficientnetv2_b0": (2 * 0.72, "Tan & Le 2021, google/automl README"),
}
ABOVE = ("above the limit: the FLOP count is of every multiply-add as written, and oneDNN can compute "
         "convolutions with fewer (Winograd, ...); or the limit was measured while other processes held a core")


def counted_gflops(base) -> float:
    """Forward GFLOPs of one image through `base`, by TensorFlow's profiler on the traced graph."""
    graph = tf.function(lambda x: base(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, *base.input_shape[1:]), tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the v1 profiler announces its deprecation
    try:
        return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops / 1e9
    finally:
        logger.setLevel(level)


def measure(name: str, size: int, limit: float) -> dict:
    model, base = common.shared_classifier(name, size)
    gflops = counted_gflops(base)
    paper, source = PAPER_GFLOPS_224[name]
    frozen_part, _ = cache.split(model)
    rng = np.random.default_rng(0)
    images = pipelines.examples_from_arrays(rng.integers(0, 256, (IMAGES, size, size, 3), dtype=np.uint8),
                                            np.arange(IMAGES) % 5)
    inference = evaluate.throughput(model, batch_size=common.BATCH, repeats=5, max_seconds=3.0)
    _, seconds = common.timed(lambda: cache.outputs(frozen_part, images, common.BATCH))
    row = {"model": name, "image_size": size, "gflops_per_image": gflops,
           "paper_gflops_per_image": paper * (size / 224) ** 2, "paper_source": source,
           "inference_images_per_s": inference, "features_images_per_s": IMAGES / seconds}
    for path in ("inference", "features"):
        row[f"{path}_gflops_per_s"] = row[f"{path}_images_per_s"] * gflops
        row[f"{path}_share_of_limit"] = row[f"{path}_gflops_per_s"] / limit
    above = [p for p in ("inference", "features") if row[f"{p}_share_of_limit"] > 1]
    row["note"] = f"{' and '.join(above)} {ABOVE}" if above else None
    return row


def run(quick: bool = False) -> dict:
    size = 96 if quick else SIZE
    part = common.Part(NAME, f"4. Efficiency at {size}x{size}, batch {common.BATCH}: GFLOP/s at inference and "
                             "computing features, as a share of this machine's matmul limit", BUDGET)
    machine = calibration.matmul_gflops(sizes=(1024,) if quick else (2048, 4096), seconds=2.0)
    limit = machine["limit_gflops"]
    print(f"  the limit: {limit:g} GFLOP/s, the best call of a float32 matmul ({machine['limit_from']}; "
          f"both libraries tried at n = {', '.join(map(str, machine['matmul']['numpy']))})", flush=True)
    for name in MODELS[:1] if quick else MODELS:
        if part.allows(name):
            r = measure(name, size, limit)
            part.add(r, f"{name}: {r['gflops_per_image']:.2f} GFLOPs/image (paper {r['paper_gflops_per_image']:.2f}); "
                        f"inference {r['inference_images_per_s']:.1f} img/s = {r['inference_gflops_per_s']:.0f} GFLOP/s "
                        f"= {r['inference_share_of_limit']:.0%} of the limit; features {r['features_images_per_s']:.1f} "
                        f"img/s = {r['features_gflops_per_s']:.0f} GFLOP/s = {r['features_share_of_limit']:.0%}"
                        + (f"  ({r['note']})" if r["note"] else ""))
    part.write(image_size=size, limit_gflops=limit, machine=machine, images=IMAGES,
               included="inference: evaluate.throughput at batch 32 after its warm-up; features: one call of "
                        "cache.outputs, its tracing included; shares use the profiler's GFLOPs per image")
    return {"rows": part.rows}
