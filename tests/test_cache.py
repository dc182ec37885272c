"""Computing only what trains (notebook 04): fine-tuning on the cached outputs of a model's frozen
part trains the same model as fine-tuning end to end, also through a resumed run."""

import keras
import numpy as np
import pytest

from helpers import cache, datasets, logbook, pipelines, samples, settings
from helpers.errors import CannotSplit, CourseError
from helpers.layers import InferenceMode

SEED = 7
# ResNet50 with random weights still passes signal at 32x32, so every strategy really learns.
SIZE, CLASSES, BATCH, EPOCHS = 32, 3, 16, 2

STRATEGIES = {  # which layers of the base train, as notebooks 03 and 04 set them
    "layers:5": lambda index, layer, count: index >= count - 5,
    "blocks:2": lambda index, layer, count: layer.name.startswith(("conv5_block2_", "conv5_block3_")),
    "from:100": lambda index, layer, count: index >= 100,
}
# What each strategy's frozen part hands over: the last tensors before the trainable layers,
# skip connections included.
CUTS = {
    "layers:5": ["conv5_block3_2_relu", "conv5_block2_out"],
    "blocks:2": ["conv5_block1_out"],
    "from:100": ["conv4_block2_3_conv", "conv4_block1_out"],
}


@pytest.fixture(autouse=True)
def cpu_float32():
    """float32 and deterministic ops, as `setup.start` sets a CPU up (before every test: with
    pytest-xdist, other modules' tests run in between in the same process)."""
    import tensorflow as tf
    keras.mixed_precision.set_global_policy("float32")
    tf.config.experimental.enable_op_determinism()


@pytest.fixture(scope="module")
def images():
    """Learnable generated images; 40 training images give a last batch of 8."""
    x, y = samples.sample_arrays(56, CLASSES, SIZE, seed=3)
    return datasets.from_arrays("generated", {"train": (x[:40], y[:40]), "val": (x[40:], y[40:]),
                                              "test": (x[40:], y[40:])}, [str(k) for k in range(CLASSES)], "generated")


def build(strategy: str, sequential_head: bool = False) -> keras.Model:
    """The notebooks' classifier (random weights): preprocessing, the base in inference mode
    with the strategy's layers trainable, pooling, Dropout and Dense logits, the last two
    also as a nested Sequential head. The same weights and dropout masks for the same seed."""
    keras.utils.set_random_seed(SEED)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    for index, layer in enumerate(base.layers):
        layer.trainable = STRATEGIES[strategy](index, layer, len(base.layers))
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.applications.resnet50.preprocess_input(inputs)
    x = InferenceMode(base, name="base")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    head = [keras.layers.Dropout(0.5), keras.layers.Dense(CLASSES, name="logits")]
    if sequential_head:
        outputs = keras.Sequential(head, name="classifier")(x)
    else:
        outputs = head[1](head[0](x))
    return keras.Model(inputs, outputs, name="classifier")


def compile_(model: keras.Model, **options) -> keras.Model:
    # a fine-tuning rate: at 1e-3 a random ResNet50 trained from layer 100 turns chaotic, and two
    # computations of the same numbers that differ in the last bits end epochs apart
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], **options)
    return model


def fit(model, train_examples, val_examples, epochs=EPOCHS, callbacks=(), **options):
    # a fresh training dataset: both paths read passes 0, 1, ... in the same orders
    return model.fit(pipelines.batches(train_examples, BATCH, shuffle_seed=SEED),
                     validation_data=pipelines.batches(val_examples, BATCH), epochs=epochs,
                     callbacks=list(callbacks), verbose=0, **options)


def assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    """Equal within float tolerance: Adam divides by the root of the squared gradients, so a
    rounding difference in a near-zero gradient can move a weight by a part of a step (1e-3)."""
    assert [w.path for w in a.weights] == [w.path for w in b.weights]
    for left, right in zip(a.weights, b.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(left), keras.ops.convert_to_numpy(right),
                                   rtol=1e-4, atol=1e-4, err_msg=left.path)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_fine_tuning_on_the_cached_frozen_part_trains_the_same_model(images, strategy):
    sequential = strategy == "blocks:2"
    end_to_end = build(strategy, sequential)
    before = [keras.ops.convert_to_numpy(w) for w in end_to_end.trainable_weights]
    e2e = fit(compile_(end_to_end), images.train, images.val)

    model = build(strategy, sequential)
    frozen_part, trainable_part = cache.split(model)
    assert [t.name for t in trainable_part.inputs] == CUTS[strategy]
    assert ({id(w) for w in trainable_part.trainable_weights}
            == {id(w) for w in model.trainable_weights})  # shared: fitting it trains `model`
    assert not frozen_part.trainable_weights
    train_cut = cache.outputs(frozen_part, images.train, BATCH)
    val_cut = cache.outputs(frozen_part, images.val, BATCH)
    cached = fit(compile_(trainable_part), train_cut, val_cut)

    # two computations of the same numbers (the frozen part once, or in every step): float32
    # sums in another order, so the losses agree to rtol 1e-5 (about 80 units in the last place)
    np.testing.assert_allclose(cached.history["val_loss"], e2e.history["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(cached.history["loss"], e2e.history["loss"], rtol=1e-5)
    assert_same_weights(model, end_to_end)
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert all(not np.allclose(a, b) for a, b in zip(after, before))  # every trainable weight moved


def test_a_head_trained_on_features_computed_once_trains_the_same_model(images):
    """Notebook 02's way: `features` (pixels to pooled features) runs once, a separate `head` model
    trains on its outputs; the same epochs and weights as `model.fit` on the images."""
    def frozen_model():
        keras.utils.set_random_seed(SEED)
        base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
        base.trainable = False
        inputs = keras.Input((SIZE, SIZE, 3))
        x = InferenceMode(base)(keras.applications.resnet50.preprocess_input(inputs))
        pooled = keras.layers.GlobalAveragePooling2D()(x)
        head = keras.Sequential([keras.Input(pooled.shape[1:]), keras.layers.Dropout(0.5, name="drop"),
                                 keras.layers.Dense(CLASSES, name="logits")], name="head")
        return keras.Model(inputs, head(pooled)), keras.Model(inputs, pooled), head

    end_to_end, _, _ = frozen_model()
    e2e = fit(compile_(end_to_end), images.train, images.val)
    model, features, head = frozen_model()
    cached = fit(compile_(head), cache.outputs(features, images.train, BATCH),
                 cache.outputs(features, images.val, BATCH))

    np.testing.assert_allclose(cached.history["val_loss"], e2e.history["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(cached.history["loss"], e2e.history["loss"], rtol=1e-5)
    assert_same_weights(model, end_to_end)


class Interrupted(Exception):
    pass


class InterruptAfter(keras.callbacks.Callback):
    """Stops a fit at the end of an epoch, after the callbacks before it (the backup)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Interrupted


def cached_run(log: logbook.Logbook, images, epochs: int, interrupt: bool = False) -> keras.Model:
    """Fine-tune layers:5 on the cached frozen part with the logbook's callbacks, notebook 04's
    way; with `interrupt`, stop after the first epoch and fit again as a rerun of the cell
    would: new pipelines, a fresh optimizer, weights that are not the backup's."""
    model = build("layers:5")
    frozen_part, trainable_part = cache.split(model)
    train_cut = cache.outputs(frozen_part, images.train, BATCH)
    val_cut = cache.outputs(frozen_part, images.val, BATCH)

    def fit_cell(callbacks):
        compile_(trainable_part)
        trainable_part.fit(pipelines.batches(train_cut, BATCH, shuffle_seed=SEED),
                           validation_data=pipelines.batches(val_cut, BATCH), epochs=epochs, verbose=0,
                           callbacks=callbacks)

    if interrupt:
        with pytest.raises(Interrupted):
            fit_cell(log.callbacks() + [InterruptAfter(1)])
        for weight in trainable_part.trainable_weights:
            weight.assign(keras.ops.zeros_like(weight))
    fit_cell(log.callbacks())
    assert int(trainable_part.optimizer.iterations) == epochs * 3  # 40 images in batches of 16
    return model


def test_a_resumed_run_on_the_cached_part_equals_an_uninterrupted_one(images, tmp_path):
    config = settings.resolve("04_tf_flowers_unfreezing_strategies", profile="smoke", results_dir=tmp_path)
    reference = logbook.Logbook(config, "resnet50", "layers:5", variant="uninterrupted")
    log = logbook.Logbook(config, "resnet50", "layers:5")
    uninterrupted = cached_run(reference, images, epochs=3)
    resumed = cached_run(log, images, epochs=3, interrupt=True)
    rows, reference_rows = ([row for phase in x.phases() for row in phase["rows"]] for x in (log, reference))
    assert [r["epoch"] for r in rows] == [1, 2, 3] and log.phases()[0]["resumed_epochs"] == 1
    # restored from the backup, then the same computation: a tolerance only for float rounding
    np.testing.assert_allclose([r["val_loss"] for r in rows], [r["val_loss"] for r in reference_rows], rtol=1e-5)
    assert_same_weights(resumed, uninterrupted)


def test_outputs_from_disk_equal_those_in_memory(images):
    """Both caches store the numbers of one computation (`cache._computed`), so they are
    identical on any processor; only where they are kept differs."""
    frozen_part, _ = cache.split(build("layers:5"))
    in_memory = list(cache.outputs(frozen_part, images.val, 5).as_numpy_iterator())
    on_disk = cache.outputs(frozen_part, images.val, 5, memory_budget=0)
    folders = list((settings.cache_dir() / "outputs").glob(f"{frozen_part.name}-*"))
    assert folders and list(folders[-1].glob("*.npy"))  # it went to disk
    from_disk = list(on_disk.as_numpy_iterator())
    assert len(from_disk) == len(in_memory) == pipelines.count(images.val)
    _, labels = pipelines.take_images(images.val, len(in_memory))
    for (features, label), (stored, stored_label), expected in zip(in_memory, from_disk, labels):
        assert label == stored_label == expected  # in the split's order
        assert len(features) == len(stored) == 2
        for a, b in zip(features, stored):
            np.testing.assert_array_equal(a, b)
    del on_disk, from_disk
    import gc
    gc.collect()
    assert not [f for f in folders if f.exists()], "the files go with the dataset"


def test_outputs_are_kept_in_the_precision_the_model_computes_in(images):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build("layers:5")
        frozen_part, trainable_part = cache.split(model)
        cut = cache.outputs(frozen_part, images.val, BATCH)
        direct = frozen_part(pipelines.take_images(images.val, 4)[0].astype("float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    features, _ = cut.element_spec
    assert [spec.dtype.name for spec in features] == ["float16", "float16"]
    assert [t.dtype for t in trainable_part.inputs] == ["float16", "float16"]
    first = [next(iter(cut.batch(4)))[0][k].numpy() for k in range(2)]
    for stored, computed in zip(first, direct):
        computed = keras.ops.convert_to_numpy(computed)
        # Two computations of the same numbers (a batch of 16 through a compiled function against
        # 4 images called directly): float32 sums in another order, then rounded to float16, may
        # land one float16 step apart. Two float16 units in the last place at the scale of the
        # largest output allow exactly that, and nothing a float32 round trip would change.
        scale = np.abs(computed).max()
        assert scale > 0
        tolerance = 2 * float(np.spacing(np.float16(scale)))
        np.testing.assert_allclose(stored.astype(np.float32), computed.astype(np.float32),
                                   rtol=0, atol=tolerance)


def test_a_frozen_base_is_cut_after_pooling(images):
    model = build("layers:5")
    model.get_layer("base").base.trainable = False
    frozen_part, trainable_part = cache.split(model)
    assert frozen_part.output.shape == (None, 2048)
    assert [type(layer).__name__ for layer in trainable_part.layers[-1].layers] == ["InputLayer", "Dropout", "Dense"]
    x = pipelines.take_images(images.val, 4)[0].astype("float32")
    np.testing.assert_allclose(trainable_part(frozen_part(x)), model(x), rtol=1e-5, atol=1e-6)


def tiny_base() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, name="first")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Conv2D(4, 3, name="last")(x)
    base = keras.Model(inputs, x, name="tiny")
    base.get_layer("first").trainable = False
    return base


def classifier(*before: keras.layers.Layer) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = inputs
    for layer in before:
        x = layer(x)
    x = InferenceMode(tiny_base(), name="base")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


def one_sentence(error: Exception) -> str:
    text = str(error)
    assert text.endswith(".") and ". " not in text[:-1], text
    return text


def test_split_refuses_what_cannot_be_computed_once():
    _, trainable_part = cache.split(classifier(keras.layers.Rescaling(1 / 255)))  # preprocessing is fine
    assert [t.name for t in trainable_part.inputs] == ["first"]

    augmented = classifier(keras.layers.RandomFlip("horizontal"), keras.layers.Rescaling(1 / 255))
    with pytest.raises(CannotSplit) as error:
        cache.split(augmented)
    assert "augments" in one_sentence(error.value) and "random_flip" in str(error.value)

    learned = classifier(keras.layers.Conv2D(3, 1, padding="same", name="adapter"))
    with pytest.raises(CannotSplit) as error:
        cache.split(learned)
    assert "adapter" in one_sentence(error.value)
    assert isinstance(error.value, CourseError)

    inputs = keras.Input((SIZE, SIZE, 3))
    no_wrapper = keras.Model(inputs, keras.layers.Dense(CLASSES)(
        keras.layers.GlobalAveragePooling2D()(tiny_base()(inputs))))
    with pytest.raises(CannotSplit) as error:
        cache.split(no_wrapper)
    assert "InferenceMode" in one_sentence(error.value)


def test_a_split_model_still_saves_and_loads(tmp_path):
    model = classifier(keras.layers.Rescaling(1 / 255))
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))
    for _ in range(2):  # notebook 04 splits the same model once per strategy
        cache.split(model)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    # the same computation (same layers, weights, inputs and batch), so exactly the same numbers
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), expected)


@pytest.fixture
def xla_allowed():
    """XLA on this CPU, as a GPU run has it: op determinism off (Keras refuses jit_compile with it),
    and back as the notebooks set a CPU up afterwards. TensorFlow has no public switch back."""
    from tensorflow.python.framework import config as tf_config
    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was:
        tf_config.enable_op_determinism()


def test_xla_compiles_the_trainable_part_and_a_head_on_cached_features(images, xla_allowed):
    heads = []
    for strategy in ("layers:5", "frozen"):
        model = build("layers:5")
        if strategy == "frozen":
            model.get_layer("base").base.trainable = False
        frozen_part, trainable_part = cache.split(model)
        cut = cache.outputs(frozen_part, images.train, BATCH)
        compile_(trainable_part, jit_compile=True)
        assert trainable_part.jit_compile is True
        history = fit(trainable_part, cut, cache.outputs(frozen_part, images.val, BATCH), epochs=1)
        assert np.isfinite(history.history["loss"] + history.history["val_loss"]).all()
        heads.append(len(trainable_part.trainable_weights))
    assert heads[1] == 2  # the frozen base leaves only the Dense layer to train


def test_the_record_says_which_phases_xla_compiled(images, tmp_path, capsys, xla_allowed):
    """Phase 1 end to end without XLA, phase 2 on the cached frozen part with XLA: the record
    names only the phase that really was compiled with XLA, and so does the closing line."""
    config = settings.resolve("04_tf_flowers_unfreezing_strategies", profile="smoke", results_dir=tmp_path,
                              save_models=False)
    model = build("layers:5")
    log = logbook.Logbook(config, "resnet50", "layers:5")
    compile_(model, jit_compile=False)
    fit(model, images.train, images.val, epochs=1, callbacks=log.callbacks())
    frozen_part, trainable_part = cache.split(model)
    compile_(trainable_part, jit_compile=True)
    fit(trainable_part, cache.outputs(frozen_part, images.train, BATCH), cache.outputs(frozen_part, images.val, BATCH),
        epochs=2, initial_epoch=1, callbacks=log.callbacks())
    record = log.finish(model, images)
    assert [(p["phase"], p["xla"]) for p in record["phases"]] == [("phase 1", False), ("phase 2", True)]
    assert "compiled with XLA: phase 2" in capsys.readouterr().out
