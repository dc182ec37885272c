"""Freezing and unfreezing a backbone, and counting what trains.

Strategies (parsed by `config.parse_strategy`):

- ``frozen``: nothing in the base trains.
- ``all``: every layer of the base trains.
- ``layers:N``: the last N entries of ``base.layers`` train, whether or not they have
  weights (an Add or ReLU layer counts as one of the N).
- ``blocks:N``: every layer of the last N blocks trains. A block is a residual block
  of ResNet50 (``conv5_block3_*``), a depthwise-separable block of MobileNet
  (``conv_dw_13*``, ``conv_pw_13*``, ``conv_pad_13``), an inverted-residual block of
  MobileNetV2 or EfficientNetV2.
- ``from:N``: layer N of ``base.layers`` and all after it train (the article's
  ``fine_tune_at``).

BatchNorm layers that end up trainable still run in inference mode, because the
classifier calls the base with ``training=False``: their scale and offset learn, their
moving statistics stay those of pre-training.
"""

from __future__ import annotations

from collections import OrderedDict

import keras
import numpy as np

from helpers.config import SettingsError, parse_strategy
from helpers.models import backbone


def blocks(base: keras.Model, name: str) -> OrderedDict[str, list[keras.layers.Layer]]:
    """The base's layers grouped by block, in network order (stem and top layers left out)."""
    spec = backbone(name)
    groups: OrderedDict[str, list[keras.layers.Layer]] = OrderedDict()
    for layer in base.layers:
        block = spec.block_of(layer.name)
        if block is not None:
            groups.setdefault(block, []).append(layer)
    return groups


def selected_layers(base: keras.Model, name: str, strategy: str) -> list[keras.layers.Layer]:
    """The layers of `base` that a strategy makes trainable."""
    kind, count = parse_strategy(strategy)
    layers = list(base.layers)
    title = backbone(name).title
    if kind == "frozen":
        return []
    if kind == "all":
        return layers
    if kind == "layers":
        if count > len(layers):
            raise SettingsError(
                f"{title} has {len(layers)} layers; {strategy!r} asks for more, use at most {len(layers)}."
            )
        return layers[-count:]
    if kind == "from":
        if count >= len(layers):
            raise SettingsError(
                f"{title} has {len(layers)} layers; {strategy!r} starts past the end, "
                f"use a number below {len(layers)}."
            )
        return layers[count:]
    groups = blocks(base, name)
    if not groups:
        raise SettingsError(f"{title} has no blocks to unfreeze; use 'layers:N' instead.")
    if count > len(groups):
        raise SettingsError(
            f"{title} has {len(groups)} blocks; {strategy!r} asks for more, use at most {len(groups)}."
        )
    chosen = list(groups.values())[-count:]
    return [layer for group in chosen for layer in group]


def apply_strategy(base: keras.Model, name: str, strategy: str) -> list[str]:
    """Make exactly the strategy's layers trainable; returns their names.

    Recompile the model afterwards: Keras fixes the trainable set at compile time."""
    chosen = selected_layers(base, name, strategy)
    if not chosen:
        base.trainable = False
        return []
    base.trainable = True
    keep = {id(layer) for layer in chosen}
    for layer in base.layers:
        layer.trainable = id(layer) in keep
    return [layer.name for layer in chosen]


def count_params(weights) -> int:
    """Number of scalars in a list of variables."""
    return int(sum(np.prod(w.shape) for w in weights))


def trainable_params(model: keras.Model) -> int:
    """Parameters the optimizer updates (BatchNorm moving statistics never count)."""
    return count_params(model.trainable_weights)


def total_params(model: keras.Model) -> int:
    """All parameters of the model, trainable or not."""
    return count_params(model.weights)


def trainable_layer_names(base: keras.Model) -> list[str]:
    """Names of the base's layers whose weights would train."""
    if not base.trainable:
        return []
    return [layer.name for layer in base.layers if layer.trainable]


def describe_strategies(name: str, strategies, num_classes: int, image_size: int = 32):
    """What each strategy makes trainable on a backbone with a GAP + Dense head: how many
    layers and blocks, from which layer on, and the trainable parameter count. Built with
    random weights at a small size: the counts do not depend on either."""
    import pandas as pd

    from helpers.models import build_classifier

    classifier = build_classifier(name, image_size, num_classes, weights=None)
    groups = blocks(classifier.base, name)
    block_of = {id(layer): block for block, members in groups.items() for layer in members}
    rows = []
    for strategy in strategies:
        names = apply_strategy(classifier.base, name, strategy)
        chosen = [layer for layer in classifier.base.layers if layer.name in set(names)]
        rows.append({
            "model": name,
            "strategy": strategy,
            "layers": len(chosen),
            "with weights": sum(1 for layer in chosen if layer.weights),
            "blocks touched": len({block_of[id(layer)] for layer in chosen if id(layer) in block_of}),
            "first trainable layer": chosen[0].name if chosen else "-",
            "trainable params": trainable_params(classifier.model),
        })
    return pd.DataFrame(rows)
