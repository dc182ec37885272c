"""1. Features computed once (notebook 02's speed-up): the head trained on pooled features computed
once against `model.fit` on the images through the frozen base.

Both ways as notebook 02 writes them, on generated images, random weights (the compute does not
depend on them), batch 32, ten epochs, Adam 1e-3, each model built from the same seed:
- end to end: `model.fit` on the images; every epoch runs the frozen base over every image;
- features once: `pooled.predict` (pixels -> "pool") over the training and validation images, then
  the model's "logits" layer alone fitted on the features in the same shuffle orders.
speedup = wall seconds end to end / (seconds of the feature pass + of the head's fit), every first
call's tracing included both ways, as a notebook pays it. The two ways train the same numbers, so
their validation losses agree to float32 rounding (checked to a relative TOLERANCE; the order in
which the base sees the images differs, so not bit for bit).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from benchmarks import common
from helpers import pipelines

NAME, BUDGET, EPOCHS, TOLERANCE = "features", 150, 10, 1e-4
# (backbone, image size, training images, validation images): few images, so that ten epochs of
# ResNet50 through its base fit the budget; the ratio depends on the epochs, not on the images
CONFIGS = (("mobilenet_v2", 160, 128, 32), ("resnet50", 224, 32, 16))
QUICK = (("mobilenet_v2", 96, 32, 16),)


def measure(name: str, size: int, n_train: int, n_val: int, epochs: int) -> dict:
    B = common.BATCH
    (train, y_train), (val, y_val) = common.examples(n_train, size), common.examples(n_val, size, seed=7)
    model, _ = common.classifier(name, size, wrap=False)
    common.compile_at(model, 1e-3)
    timer = common.EpochTimes()
    history, end_to_end = common.timed(lambda: model.fit(
        pipelines.batches(train, B, shuffle_seed=common.SEED), validation_data=pipelines.batches(val, B),
        epochs=epochs, verbose=0, callbacks=[timer]))

    twin, _ = common.classifier(name, size, wrap=False)
    pooled = keras.Model(twin.input, twin.get_layer("pool").output)
    (f_train, f_val), feature_seconds = common.timed(lambda: [
        pooled.predict(pipelines.batches(split, B), verbose=0) for split in (train, val)])
    head = keras.Sequential([keras.Input(f_train.shape[1:]), twin.get_layer("logits")])
    common.compile_at(head, 1e-3)
    head_timer = common.EpochTimes()

    def features(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y))
    history_features, head_seconds = common.timed(lambda: head.fit(
        pipelines.batches(features(f_train, y_train), B, shuffle_seed=common.SEED),
        validation_data=pipelines.batches(features(f_val, y_val), B), epochs=epochs, verbose=0,
        callbacks=[head_timer]))
    gap = common.relative_gap(history_features.history["val_loss"], history.history["val_loss"])
    cached = feature_seconds + head_seconds
    return {"model": name, "image_size": size, "train_images": n_train, "val_images": n_val, "epochs": epochs,
            "batch_size": B, "end_to_end_seconds": end_to_end, "end_to_end_epoch_seconds": timer.seconds,
            "feature_seconds": feature_seconds, "head_seconds": head_seconds,
            "head_epoch_seconds": head_timer.seconds, "features_once_seconds": cached,
            "speedup": end_to_end / cached, "val_loss_relative_gap": gap, "tolerance": TOLERANCE,
            "agree": bool(gap <= TOLERANCE)}


def run(quick: bool = False) -> dict:
    part = common.Part(NAME, "1. Features computed once (notebook 02) against model.fit through the frozen "
                       f"base, batch {common.BATCH}, the feature pass and all tracing included", BUDGET)
    epochs = 3 if quick else EPOCHS
    for name, size, n_train, n_val in QUICK if quick else CONFIGS:
        if part.allows(f"{name}@{size}"):
            r = measure(name, size, n_train, n_val, epochs)
            part.add(r, f"{name} {size}x{size}, {n_train}+{n_val} images, {epochs} epochs: end to end "
                        f"{r['end_to_end_seconds']:.1f} s; features once {r['feature_seconds']:.1f} s + head "
                        f"{r['head_seconds']:.1f} s -> {r['speedup']:.1f}x; validation losses agree within a "
                        f"relative {r['val_loss_relative_gap']:.1e} ({'within' if r['agree'] else 'OUTSIDE'} "
                        f"{TOLERANCE:g})")
    part.write(epochs=epochs, tolerance=TOLERANCE,
               speedup={f"{r['model']}@{r['image_size']}": r["speedup"] for r in part.rows},
               included="wall seconds of each way, every first call's tracing included; features once = "
                        "pooled.predict over both splits + the head's fit")
    return {"rows": part.rows}
