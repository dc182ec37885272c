"""2. The cached frozen part (notebook 04's speed-up): seconds per fine-tuning epoch end to end
against on the cached part, and the one-time cost of filling the cache.

Notebook 04's model (preprocessing, the base in InferenceMode, pooling, logits; random weights) at
224x224, its strategies' layers unfrozen as its `layers_to_train` picks them, Adam 1e-5, batch 32,
from the same weights and in the same shuffle orders both ways:
- end to end: `model.fit` on the images; every epoch runs the whole base;
- on the cached part: `cache.split(model)` cuts where frozen layers hand over to trainable ones,
  `cache.outputs` runs the frozen part once over each split (the fill: split, both passes, their
  tracing), and `trainable_part.fit` runs only the rest every epoch (notebook 04's `fit_fast`).
s/epoch: the second epoch of each (the first also traces the train and test steps); speedup = end
to end / cached. The validation losses agree to float32 rounding (a relative TOLERANCE).
"""

from __future__ import annotations

import re

from benchmarks import common
from helpers import backbones, cache, evaluate, pipelines

NAME, BUDGET, EPOCHS, SIZE, TOLERANCE = "cached_part", 210, 2, 224, 1e-4
# (backbone, strategy, training images): few images (one or two steps an epoch), as the ratio of an
# epoch's work does not depend on how many there are; 16 validation images each
CONFIGS = (("resnet50", "layers:5", 32), ("resnet50", "blocks:2", 32), ("resnet50", "from:100", 32),
           ("mobilenet", "layers:5", 64))
QUICK = (("mobilenet", "layers:5", 32),)


def layers_to_train(base, name: str, strategy: str) -> list:
    """Notebook 04's choice: the last N layers, the last N blocks, from layer N on, all or none."""
    kind, _, n = strategy.partition(":")
    if kind == "blocks":
        blocks: dict = {}
        for layer in base.layers:
            match = re.match(backbones.get(name).block_pattern, layer.name)
            if match:
                blocks.setdefault(match.group(1), []).append(layer)
        return [layer for block in list(blocks.values())[-int(n):] for layer in block]
    if kind == "layers":
        return base.layers[-int(n):]
    if kind == "from":
        return base.layers[int(n):]
    return list(base.layers) if kind == "all" else []


def measure(model, base, initial, name: str, strategy: str, train, val, epochs: int) -> dict:
    B = common.BATCH
    base.trainable = True
    chosen = layers_to_train(base, name, strategy)
    for layer in base.layers:
        layer.trainable = any(layer is c for c in chosen)
    model.set_weights(initial)
    common.compile_at(model, 1e-5)
    whole = common.EpochTimes()
    history = model.fit(pipelines.batches(train, B, shuffle_seed=common.SEED), verbose=0, epochs=epochs,
                        validation_data=pipelines.batches(val, B), callbacks=[whole])

    model.set_weights(initial)

    def fill():
        frozen_part, trainable_part = cache.split(model)
        return trainable_part, cache.outputs(frozen_part, train, B), cache.outputs(frozen_part, val, B)
    (trainable_part, train_cut, val_cut), fill_seconds = common.timed(fill)
    common.compile_at(trainable_part, 1e-5)
    part = common.EpochTimes()
    cached = trainable_part.fit(pipelines.batches(train_cut, B, shuffle_seed=common.SEED), verbose=0,
                                epochs=epochs, validation_data=pipelines.batches(val_cut, B), callbacks=[part])
    gap = common.relative_gap(cached.history["val_loss"], history.history["val_loss"])
    return {"model": name, "strategy": strategy, "image_size": SIZE, "train_images": pipelines.count(train),
            "val_images": pipelines.count(val), "epochs": epochs, "batch_size": B,
            "trainable_params": evaluate.count_params(model.trainable_weights),
            "cut": [f"{t.name} {tuple(t.shape[1:])}" for t in trainable_part.inputs],
            "end_to_end_epoch_seconds": whole.later(), "cached_epoch_seconds": part.later(),
            "speedup": whole.later() / part.later(), "fill_seconds": fill_seconds,
            "fill_in_end_to_end_epochs": fill_seconds / whole.later(),
            "end_to_end_all_epochs": whole.seconds, "cached_all_epochs": part.seconds,
            "val_loss_relative_gap": gap, "tolerance": TOLERANCE, "agree": bool(gap <= TOLERANCE)}


def run(quick: bool = False) -> dict:
    size = 96 if quick else SIZE
    part = common.Part(NAME, f"2. Fine-tuning on the cached frozen part (notebook 04) against end to end, "
                             f"{size}x{size}, batch {common.BATCH}, s/epoch at the second epoch", BUDGET)
    train, _ = common.examples(max(n for *_, n in CONFIGS), size)
    val, _ = common.examples(16, size, seed=7)
    built: dict = {}
    for name, strategy, n_train in QUICK if quick else CONFIGS:
        if not part.allows(f"{name} {strategy}"):
            continue
        if name not in built:
            built.clear()  # one model at a time in memory
            model, base = common.classifier(name, size)
            built[name] = model, base, model.get_weights()
        r = measure(*built[name], name, strategy, train.take(n_train), val, EPOCHS)
        part.add(r, f"{name} {strategy} ({r['trainable_params']:,} trainable): end to end "
                    f"{r['end_to_end_epoch_seconds']:.2f} s/epoch, on the cached part {r['cached_epoch_seconds']:.3f} "
                    f"s/epoch -> {r['speedup']:.1f}x; filling the cache {r['fill_seconds']:.1f} s once "
                    f"({r['fill_in_end_to_end_epochs']:.1f} end-to-end epochs); validation losses agree within "
                    f"a relative {r['val_loss_relative_gap']:.1e} ({'within' if r['agree'] else 'OUTSIDE'} {TOLERANCE:g})")
    part.write(image_size=size, epochs=EPOCHS, tolerance=TOLERANCE,
               speedup={f"{r['model']} {r['strategy']}": r["speedup"] for r in part.rows},
               included="s/epoch: the second epoch, training and validation images; fill: split and "
                        "cache.outputs over both splits, tracing included, once per run")
    return {"rows": part.rows}
