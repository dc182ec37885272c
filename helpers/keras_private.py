"""The private Keras attributes the course relies on where Keras has no public API, kept in this one
module and tested on Keras 3.8 and 3.15 (the ends of the supported range): reading a functional
model's graph to cut it at a layer (`cache`, notebook 04 "Train only what trains"), a layer's random
state, and continuing `fit` at a later epoch (`logbook`, the "extra code" fit cells of 01-05)."""

from __future__ import annotations

import keras


def producer(tensor):
    """The graph node (one call of a layer) that made a symbolic tensor: `KerasTensor._keras_history`."""
    layer, index, _ = tensor._keras_history
    return layer._inbound_nodes[index]


def seed_generators(layer) -> list:
    """The random-number generators of a layer and of every layer inside it (augmentation, dropout)."""
    inner = layer._flatten_layers() if isinstance(layer, keras.layers.Layer) else []
    return [generator for each in inner for generator in getattr(each, "_seed_generators", None) or []]


def start_fit_at(model: keras.Model, epoch: int | None) -> None:
    """Make the model's next `fit` start at `epoch` (None: at its own `initial_epoch`), as
    `keras.callbacks.BackupAndRestore` does through `Model._initial_epoch`."""
    model._initial_epoch = epoch
