"""Notebook 04, "Train only what trains": frozen layers in inference mode, fed unaugmented images, give the
same outputs every epoch. `split` cuts them off; `outputs` runs them once over a split:

    frozen_part, trainable_part = cache.split(model)
    train_cut = cache.outputs(frozen_part, flowers.train, BATCH_SIZE)
    trainable_part.fit(pipelines.batches(train_cut, BATCH_SIZE, shuffle_seed=SEED), ...)  # trains `model`

Cutting a functional model at a layer has no public Keras API: the graph is read through `keras_private`."""

from __future__ import annotations

import os
import shutil
import uuid
import weakref

import keras
import numpy as np
import tensorflow as tf

from helpers import pipelines, progress
from helpers.errors import CannotSplit
from helpers.keras_private import producer, seed_generators
from helpers.layers import InferenceMode
from helpers.settings import cache_dir

MEMORY_BUDGET = 2 * 2**30  # bytes of cached outputs kept in memory; more go to disk


def _nodes(outputs: list, stop: list = ()) -> list:
    """The nodes that compute `outputs`, each after those it reads from, none behind `stop`."""
    stop_ids, order, seen = {id(t) for t in stop}, [], set()
    pending = [(producer(t), False) for t in reversed(outputs) if id(t) not in stop_ids]
    while pending:
        node, ready = pending.pop()
        if ready:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        pending.append((node, True))
        pending += [(producer(t), False) for t in reversed(node.input_tensors) if id(t) not in stop_ids]
    return order


def _trains(layer) -> bool:
    return bool(getattr(layer, "trainable_weights", None))  # Keras < 3.9 has plain ops (Cast)


def _random(layer) -> bool:
    """Whether a layer (or one inside) draws random numbers when training (augmentation, dropout)."""
    return bool(seed_generators(layer))


def _is_input(node) -> bool:
    return isinstance(node.operation, keras.layers.InputLayer)


def _cut(nodes: list, frozen: set, moves) -> list:
    """The tensors frozen nodes pass to live ones, in graph order. A node is live when
    `moves(layer)` or when it reads a live tensor; `frozen` (tensor ids) is extended."""
    cut = []
    for node in nodes:
        if _is_input(node) or not (moves(node.operation) or any(id(t) not in frozen for t in node.input_tensors)):
            frozen.update(id(t) for t in node.outputs)
            continue
        for t in node.input_tensors:
            if id(t) in frozen and all(t is not c for c in cut):
                cut.append(t)
    return cut


def _single(tensors: list | tuple):
    return tensors[0] if len(tensors) == 1 else tensors


def split(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(frozen_part, trainable_part) of raw pixels -> preprocessing -> `InferenceMode(base)` -> head:
    frozen_part gives every tensor a frozen layer passes to a trainable one; the trainable_part shares
    its layers with `model`, so fitting it trains `model` (notebook 04, "Train only what trains")."""
    outer = _nodes(model.outputs)
    wrappers = [n for n in outer if isinstance(n.operation, InferenceMode)]
    if len(wrappers) != 1:
        raise CannotSplit(f"{model.name} has {len(wrappers)} bases wrapped in InferenceMode; split needs "
                          "exactly one, with the layers before it frozen and the head after it.")
    wrapper, base = wrappers[0], wrappers[0].operation.base
    (pixels,), (features,) = wrapper.input_tensors, wrapper.outputs
    for node in _nodes([pixels]):
        layer = node.operation
        if _random(layer):
            raise CannotSplit(f"{model.name} augments its inputs ({layer.name}, before the base), so its frozen "
                              "layers see different images every epoch and their outputs cannot be computed "
                              "once; fine-tune it end to end.")
        if _trains(layer):
            raise CannotSplit(f"{layer.name} comes before the base and is trainable, so nothing after it is "
                              "constant; freeze it (layer.trainable = False) or fine-tune end to end.")
    head = _nodes(model.outputs, stop=[features])
    if any(_is_input(node) for node in head):
        raise CannotSplit(f"{model.name} reads its inputs also other than through the base, so no part of it "
                          "can be computed once.")

    name, policy = wrapper.operation.name, wrapper.operation.dtype_policy
    inner_cut = _cut(_nodes(base.outputs), set(), _trains)
    if inner_cut:  # part of the base trains: cut inside it, both parts in inference mode
        prefix = keras.Model(base.inputs, _single(inner_cut), name=f"{base.name}_frozen")
        cut = InferenceMode(prefix, name=name, dtype=policy)(pixels)
        frozen_part = keras.Model(_single(model.inputs), cut, name=f"{model.name}_frozen_part")
        inputs = _inputs_like(inner_cut)
        rest = keras.Model(_single(inner_cut), _single(base.outputs), name=f"{base.name}_trainable")
        x = InferenceMode(rest, name=name, dtype=policy)(_single(inputs))
        after = keras.Model(features, _single(model.outputs), name="head")
        return frozen_part, keras.Model(_single(inputs), after(x), name=f"{model.name}_trainable_part")

    # The whole base is frozen: the cut lies after it (e.g. the pooled features).
    cut = _cut(head, {id(features)}, lambda layer: _trains(layer) or _random(layer))
    if not cut:
        raise CannotSplit(f"Nothing in {model.name} trains, so there is nothing to split off.")
    frozen_part = keras.Model(_single(model.inputs), _single(cut), name=f"{model.name}_frozen_part")
    inputs = _inputs_like(cut)
    after = keras.Model(_single(cut), _single(model.outputs), name="head")
    return frozen_part, keras.Model(_single(inputs), after(_single(inputs)), name=f"{model.name}_trainable_part")


def _inputs_like(tensors: list) -> list:
    """New inputs of the same shapes and precision, named after the layers that made them."""
    return [keras.Input(t.shape[1:], dtype=t.dtype, name=producer(t).operation.name) for t in tensors]


def _computed(model: keras.Model, examples: tf.data.Dataset, batch_size: int, what: str):
    """(outputs, labels) of each batch of a split, in order, as numpy: the one computation that
    both the in-memory and the on-disk cache store, so the two hold identical numbers."""
    def call(*x):  # `model(x, training=False)` compiled for any batch size, returning a list of outputs
        result = model(_single(list(x)), training=False)
        return list(result) if isinstance(result, (list, tuple)) else [result]

    spec = [tf.TensorSpec((None, *x.shape[1:]), tf.float32) for x in model.inputs]
    call = tf.function(call, input_signature=spec, autograph=False)  # no Python branches
    steps = -(-pipelines.count(examples) // batch_size)
    for images, y in progress.bar(pipelines.batches(examples, batch_size), steps, what):
        yield [value.numpy() for value in call(images)], y.numpy()


def outputs(model: keras.Model, examples: tf.data.Dataset, batch_size: int = 64, *,
            memory_budget: float = MEMORY_BUDGET) -> tf.data.Dataset:
    """The unbatched (outputs, label) examples of `model` run once over a split, in order: in memory within
    `memory_budget` bytes, else in .npy files in the course's cache, removed with the dataset (notebook 04,
    "Train only what trains")."""
    count = pipelines.count(examples)
    label = examples.element_spec[1]
    shapes = [(count, *t.shape[1:]) for t in model.outputs] + [(count, *label.shape)]
    dtypes = [np.dtype(keras.backend.standardize_dtype(t.dtype)) for t in model.outputs]
    dtypes.append(np.dtype(label.dtype.as_numpy_dtype))
    on_disk = sum(int(np.prod(s)) * d.itemsize for s, d in zip(shapes, dtypes)) > memory_budget
    if on_disk:
        path = cache_dir() / "outputs" / f"{model.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        print(f"{model.name}: outputs larger than the memory budget, kept in {path} while they are used")
        parts = [np.lib.format.open_memmap(path / f"{k}.npy", "w+", d, s) for k, (s, d) in enumerate(zip(shapes, dtypes))]
    else:
        parts = [np.empty(s, d) for s, d in zip(shapes, dtypes)]
    start, what = 0, f"{model.name}: once over {count} images" + (", to disk" if on_disk else "")
    for values, y in _computed(model, examples, batch_size, what):
        for part, value in zip(parts, [*values, y]):
            part[start:start + len(y)] = value
        start += len(y)
    if not on_disk:
        return tf.data.Dataset.from_tensor_slices((_single(tuple(parts[:-1])), parts[-1]))
    for part in parts:
        part.flush()

    def read(chunk: int = 256):  # in chunks from the files, never all in memory
        stored = [np.load(path / f"{k}.npy", mmap_mode="r") for k in range(len(parts))]
        for begin in range(0, count, chunk):
            batch = [np.asarray(s[begin:begin + chunk]) for s in stored]
            yield _single(tuple(batch[:-1])), batch[-1]

    specs = [tf.TensorSpec((None, *s[1:]), tf.as_dtype(d)) for s, d in zip(shapes, dtypes)]
    chunks = tf.data.Dataset.from_generator(read, output_signature=(_single(tuple(specs[:-1])), specs[-1]))
    dataset = chunks.unbatch().apply(tf.data.experimental.assert_cardinality(count))
    weakref.finalize(dataset, shutil.rmtree, path, True)
    return dataset
