"""Shipping a trained model as TensorFlow Lite (LiteRT) in the four formats notebook 07 compares.
Every format takes raw 0-255 float32 pixels and returns float32 logits, as the Keras model does.

    files = lite.convert(model, lite.representative_images(data.train, 100, seed=42))
    small = lite.LiteModel(files["int8"])
    small.predict(data.test).accuracy, evaluate.latency_ms(small), small.size_mb
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

from helpers import backbones, config, evaluate, results
from helpers import data as data_module
from helpers.setup import quiet_stderr

FORMATS = {"float32": "float32 weights and arithmetic (the Keras model, as a flat file)",
           "float16": "float16 weights, float32 arithmetic",
           "dynamic-int8": "int8 weights, float32 activations (dynamic-range quantization)",
           "int8": "int8 weights and activations, calibrated on training images"}


def interpreter_class():
    """LiteRT's interpreter (the `ai-edge-litert` package, which replaces `tf.lite.Interpreter`)."""
    from ai_edge_litert.interpreter import Interpreter
    return Interpreter


def _float32_config(value):
    """A serialized model with every mixed-precision dtype policy replaced by float32."""
    if isinstance(value, dict):
        policy = value.get("class_name") == "DTypePolicy"
        if policy and str(value["config"]["name"]).startswith("mixed_"):
            return {**value, "config": {**value["config"], "name": "float32"}}
        half = ("float16", "bfloat16")
        return {k: "float32" if k == "dtype" and v in half else _float32_config(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    return value


def float32_copy(model: keras.Model) -> keras.Model:
    """The model computing in float32 (the converter cannot quantize mixed precision's float16)."""
    config = keras.saving.serialize_keras_object(model)
    plain = _float32_config(config)
    if plain == config:
        return model
    copy = keras.saving.deserialize_keras_object(plain)
    copy.set_weights(model.get_weights())
    return copy


def saved_model(model: keras.Model, folder: Path) -> Path:
    """The inference function (training=False) as a SavedModel taking float32 batches of any size."""
    model = float32_copy(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[spec])
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # not "INFO:tensorflow:Assets written to: ..."
    try:
        with quiet_stderr():
            archive.write_out(str(folder), verbose=False)
    finally:
        logger.setLevel(level)
    return Path(folder)


def representative_images(examples: tf.data.Dataset, count: int, seed: int) -> np.ndarray:
    """`count` seeded random images of a split as float32 pixels (int8 calibration data)."""
    total = data_module.count(examples)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(total, min(count, total), replace=False).tolist())
    images = [image for i, (image, _) in enumerate(examples.as_numpy_iterator()) if i in chosen]
    return np.stack(images).astype(np.float32)


def convert(model: keras.Model, representative: np.ndarray | None = None,
            formats=tuple(FORMATS)) -> dict[str, bytes]:
    """The model as .tflite bytes in each of `FORMATS` (full int8 needs `representative`)."""
    unknown = [kind for kind in formats if kind not in FORMATS]
    if unknown:
        raise ValueError(f"Unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}.")
    if "int8" in formats and (representative is None or not len(representative)):
        raise ValueError("Full int8 needs representative images (from the training split).")

    def calibration() -> Iterator[list[np.ndarray]]:
        for image in representative:
            yield [image[None].astype(np.float32)]

    converted = {}
    with tempfile.TemporaryDirectory() as folder:
        saved_model(model, Path(folder))
        for kind in formats:
            conv = tf.lite.TFLiteConverter.from_saved_model(folder)
            if kind != "float32":
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
            if kind == "float16":
                conv.target_spec.supported_types = [tf.float16]
            if kind == "int8":
                conv.representative_dataset = calibration
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # or fail
            with quiet_stderr():
                converted[kind] = conv.convert()
    return converted


class LiteModel:
    """A .tflite model (bytes or a file) in LiteRT's interpreter, called like the Keras model."""

    def __init__(self, content: bytes | str | Path, num_threads: int | None = None):
        self.content = content if isinstance(content, bytes) else Path(content).read_bytes()
        with quiet_stderr():
            self.interpreter = interpreter_class()(model_content=self.content, num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.image_shape = tuple(int(d) for d in self.input["shape"][1:])
        self.input_shape = (None, *self.image_shape)  # as a Keras model's, for evaluate's timings
        self._batch = 0

    @property
    def size_mb(self) -> float:
        return len(self.content) / 2**20

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Logits of a batch of images."""
        images = np.asarray(images, dtype=np.float32)
        if len(images) != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], (len(images), *self.image_shape))
            with quiet_stderr():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter.allocate_tensors()
            self._batch = len(images)
        self.interpreter.set_tensor(self.input["index"], images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).astype(np.float32)

    def predict(self, examples: tf.data.Dataset, batch_size: int = 32) -> evaluate.Predictions:
        """Logits and labels of a split, in its order, as `evaluate.predict` gives them."""
        return evaluate.predict_with(lambda images: self(images.numpy()), examples, batch_size)


def agreement(first: evaluate.Predictions, second: evaluate.Predictions) -> float:
    """The fraction of images two models give the same class."""
    return float(np.mean(first.y_pred == second.y_pred))


# The notebooks that train light models, and how each loads its data set.
SOURCE_NOTEBOOKS = {
    "01_cifar10_resnet50_vs_mobilenet": lambda s: data_module.load_cifar10(s, val_fraction=0.3),
    "04_animals_mobilenetv2_vs_efficientnetv2": data_module.load_animals,
    "05_cats_vs_dogs_feature_extraction": data_module.load_cats_vs_dogs,
}


@dataclass
class Source:
    """One light model a notebook trained: its record and saved model, or why they are missing."""
    notebook: str
    model: str
    record: dict | None = None
    model_path: Path | None = None
    problem: str | None = None

    @property
    def title(self) -> str:
        return f"{backbones.get(self.model).title} from notebook {self.notebook[:2]}"


def light_models(settings: config.Settings) -> list[Source]:
    """The light models notebooks 01, 04 and 05 saved for this profile, or what is missing."""
    found = []
    for notebook in SOURCE_NOTEBOOKS:
        run_it = f"run notebooks/{notebook}.ipynb on the {settings.profile} profile"
        records, _ = results.load_records(settings.results_dir / notebook)
        records = [r for r in records if r.get("profile") == settings.profile and r.get("notebook") == notebook
                   and r["model"] in backbones.BACKBONES and backbones.get(r["model"]).light]
        expected = [m for m in config.PROFILES[notebook][settings.profile].models if backbones.get(m).light]
        for model in dict.fromkeys(expected + [r["model"] for r in records]):
            mine = sorted((r for r in records if r["model"] == model),
                          key=lambda r: (r.get("variant") is not None, r.get("status") != "ok"))
            source = Source(notebook, model, mine[0] if mine else None)
            if source.record is None:
                source.problem = f"no record: {run_it}"
            elif source.record.get("status") != "ok":
                source.problem = f"its run failed: {run_it} with REDO = True"
            elif not source.record.get("model_file"):
                source.problem = f"the model was not saved: {run_it} with SAVE_MODELS = True and REDO = True"
            else:
                source.model_path = settings.results_dir / notebook / source.record["model_file"]
                if not source.model_path.exists():
                    source.problem = f"{source.model_path} is missing: {run_it} with REDO = True"
            found.append(source)
    return found


def training_data(record: dict) -> data_module.ImageData:
    """The data set a model was trained on, split as its notebook split it (same settings, seed)."""
    # nothing trains here: the full profile's warning about hours of training on a CPU is moot
    with mock.patch.dict(os.environ, {"COURSE_FULL_ON_CPU": "1"}):
        settings = config.resolve(
            record["notebook"], profile=record["profile"], image_size=record["image_size"],
            limit=record["limit"], seed=record["seed"], data_dir=record["data_dir"],
            batch_size=record["batch_size"])
    return SOURCE_NOTEBOOKS[record["notebook"]](settings)


# What a converted model's record takes from the record of the model it was made from.
FROM_SOURCE = ("article", "dataset", "image_size", "batch_size", "epochs", "fine_tune_epochs",
               "optimizer", "learning_rate", "fine_tune_learning_rate", "train_accuracy",
               "train_loss", "trainable_params", "total_params", "train_seconds", "skipped_files",
               "seed", "limit", "weights", "data_dir", "split_fingerprint", "class_names")


def record_path(settings: config.Settings, source: Source, kind: str) -> Path:
    """Where the record of one converted model goes, e.g. mobilenet_v2__tflite-int8__from-05.json."""
    return results.record_path(settings, source.model, f"tflite-{kind}", f"from-{source.notebook[:2]}")


def new_record(settings: config.Settings, source: Source, kind: str, tflite: LiteModel,
               val: evaluate.Predictions, test: evaluate.Predictions, **values) -> dict:
    """A converted model's record: its own measurements, and its source's training facts."""
    from helpers.train import device_name
    batch = 32
    return results.new_record(
        settings, source.model, f"tflite-{kind}", variant=f"from-{source.notebook[:2]}",
        title=f"{source.title}, LiteRT {kind}",
        **{field: source.record.get(field) for field in FROM_SOURCE},
        val_accuracy=val.accuracy, val_loss=val.loss,
        test_accuracy=test.accuracy, test_loss=test.loss,
        inference_ms_per_image=evaluate.latency_ms(tflite),
        throughput_images_per_s=evaluate.throughput(tflite, batch_size=batch, repeats=5, max_seconds=1.0),
        throughput_batch_size=batch, device=device_name(), model_size_mb=tflite.size_mb, **values,
    )
