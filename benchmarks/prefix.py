"""5. Fine-tuning on the cached frozen part against end to end, per unfreezing strategy.

For each backbone and strategy (224x224, random weights, the strategy's layers trainable as in
notebook 03), the same classifier is built twice from the same seed and fine-tuned with
`model.fit` on the same generated images (Adam 1e-5, batch 32):
- end to end: every epoch runs the whole base over the training and validation images;
- cached: `cache.split(model)` cuts the model where frozen layers hand over to trainable ones;
  `cache.outputs` runs the frozen part once per split (the fill) and `trainable_part.fit`
  runs only the rest in every epoch.

`prefix_speedup` = seconds per epoch end to end / seconds per epoch on the cached part (the
fastest epoch after the first of each: the first also traces, and other processes can only
slow an epoch down). The fill is shown apart, cold (its tracing included) as a notebook pays
it once per run, and in end-to-end epochs. The ratios of FLOPs per epoch (the base's forward
plus the trainable part's backward, against the trainable part's forward and backward):
ResNet50 layers:5 ~26x, blocks:2 ~3.6x, from:100 ~1.5x, MobileNet layers:5 ~4.3x. Time can
beat them where the frozen layers run fewer FLOP/s than the trainable ones (MobileNet's
depthwise convolutions at high resolution against one large 1x1 convolution at 7x7).
"""

from __future__ import annotations

import time

import keras
import numpy as np

from benchmarks import common
from helpers import cache, data

NAME = "prefix"
BATCH = 32
EPOCHS = 4
LEARNING_RATE = 1e-5
# (backbone, strategy, training images, validation images, target speedup)
CONFIGS = (
    ("resnet50", "layers:5", 64, 32, 10.0),
    ("resnet50", "blocks:2", 64, 32, 3.0),
    ("resnet50", "from:100", 64, 32, 1.3),
    ("mobilenet", "layers:5", 128, 32, 3.5),
)
QUICK = (("resnet50", "layers:5", 32, 32, None), ("mobilenet", "layers:5", 32, 32, None))


def _bytes(tensor) -> int:
    """Bytes per example of a symbolic tensor."""
    return int(np.prod(tensor.shape[1:])) * np.dtype(keras.backend.standardize_dtype(tensor.dtype)).itemsize


def _fit(model: keras.Model, train, val, epochs: int) -> tuple[dict, common.EpochTimer]:
    timer = common.EpochTimer()
    common.compile_model(model, LEARNING_RATE)
    data.set_epoch(0)  # the same shuffle orders on both paths
    history = model.fit(data.batches(train, BATCH, shuffle_seed=common.SEED),
                        validation_data=data.batches(val, BATCH), epochs=epochs, verbose=0,
                        callbacks=[timer])
    return history.history, timer


def measure(name: str, strategy: str, n_train: int, n_val: int, target: float | None,
            size: int, epochs: int) -> dict:
    image_data = common.image_data(n_train, n_val, size)
    end_to_end, _ = common.classifier(name, size, strategy=strategy, fresh=True)
    e2e_history, e2e = _fit(end_to_end, image_data.train, image_data.val, epochs)
    del end_to_end

    model, _ = common.classifier(name, size, strategy=strategy, fresh=True)
    start = time.perf_counter()
    frozen_part, trainable_part = cache.split(model)
    train_cut = cache.outputs(frozen_part, image_data.train, BATCH)
    val_cut = cache.outputs(frozen_part, image_data.val, BATCH)
    fill = time.perf_counter() - start
    history, cached = _fit(trainable_part, train_cut, val_cut, epochs)

    row = {
        "model": name, "strategy": strategy, "image_size": size, "train_images": n_train,
        "val_images": n_val, "epochs": epochs, "batch_size": BATCH,
        "trainable_params": sum(int(keras.ops.size(w)) for w in model.trainable_weights),
        "cut": [f"{t.name} {tuple(t.shape[1:])}" for t in trainable_part.inputs],
        "cached_mb_per_image": sum(_bytes(t) for t in frozen_part.outputs) / 2**20,
        "end_to_end_epoch_seconds": e2e.fastest(),
        "cached_epoch_seconds": cached.fastest(),
        "prefix_speedup": e2e.fastest() / cached.fastest(),
        "fill_seconds": fill,
        "fill_in_end_to_end_epochs": fill / e2e.fastest(),
        "target": target,
        "end_to_end_all_epoch_seconds": e2e.seconds,
        "cached_all_epoch_seconds": cached.seconds,
        "max_val_loss_difference": max(abs(a - b) for a, b in zip(history["val_loss"],
                                                                  e2e_history["val_loss"])),
        "load_average": common.load_average(),
    }
    row["meets_target"] = None if target is None else row["prefix_speedup"] >= target
    return row


def run(quick: bool = False) -> dict:
    started, load = time.perf_counter(), common.load_average()
    common.device()
    size, epochs = (96, 2) if quick else (common.SIZE, EPOCHS)
    rows = [measure(*config, size, epochs) for config in (QUICK if quick else CONFIGS)]
    common.table(
        f"5. Fine-tuning per strategy: seconds per epoch end to end against on the cached frozen "
        f"part ({size}x{size}, batch {BATCH}, model.fit both ways)",
        [("model", "model", ""), ("strategy", "strategy", ""), ("train_images", "train", "d"),
         ("val_images", "val", "d"), ("trainable_params", "trainable", ","),
         ("cached_mb_per_image", "cache MB/img", ".2f"),
         ("end_to_end_epoch_seconds", "e2e s/epoch", ".2f"),
         ("cached_epoch_seconds", "cached s/epoch", ".3f"), ("prefix_speedup", "speedup", ".1f"),
         ("target", "target", ""), ("fill_seconds", "fill s", ".1f"),
         ("fill_in_end_to_end_epochs", "fill/e2e epoch", ".2f"), ("load_average", "load", ".1f")],
        rows,
        ["s/epoch: the fastest epoch after the first (training and validation images); "
         "speedup = e2e s/epoch / cached s/epoch",
         "fill s: split and cache.outputs over the training and validation images, tracing "
         "included (once per run); fill/e2e epoch: the same in end-to-end epochs",
         "cache MB/img: what the frozen part hands over per image, in the model's precision"],
    )
    report: dict = {"image_size": size, "epochs": epochs, "batch_size": BATCH, "rows": rows}
    for row in rows:
        report.setdefault(row["model"], {})[row["strategy"]] = {
            key: row[key] for key in ("prefix_speedup", "end_to_end_epoch_seconds",
                                      "cached_epoch_seconds", "fill_seconds", "target")}
    report["included"] = ("prefix_speedup: fastest epoch after the first, both ways (tracing and "
                          "interference left out); fill: cold, tracing included")
    common.write_report(NAME, report, started, load)
    return report


if __name__ == "__main__":
    common.main(run)
