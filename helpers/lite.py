"""Notebook 07's chores around the LiteRT conversion it shows: the light models notebooks 01, 02
and 05 saved, the data sets they were trained on, calibration images, a float32 copy of a model
trained under mixed precision, and the converted models' records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import backbones, datasets, evaluate, pipelines, records, settings
from helpers.logbook import device_name


def _float32_config(value):
    """A serialized model with every mixed-precision dtype policy replaced by float32."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and str(value["config"]["name"]).startswith("mixed_"):
            return {**value, "config": {**value["config"], "name": "float32"}}
        return {k: "float32" if k == "dtype" and v in ("float16", "bfloat16") else _float32_config(v)
                for k, v in value.items()}
    return [_float32_config(v) for v in value] if isinstance(value, list) else value


def float32_copy(model: keras.Model) -> keras.Model:
    """The model computing in float32, as the converter cannot quantize mixed precision's float16
    (notebook 07, "Converting")."""
    config = keras.saving.serialize_keras_object(model)
    plain = _float32_config(config)
    if plain == config:
        return model
    copy = keras.saving.deserialize_keras_object(plain)
    copy.set_weights(model.get_weights())
    return copy


def representative_images(examples: tf.data.Dataset, count: int, seed: int) -> np.ndarray:
    """`count` seeded random images of a split as float32 pixels (int8 calibration, 07, "Converting")."""
    total = pipelines.count(examples)
    chosen = set(np.random.default_rng(seed).choice(total, min(count, total), replace=False).tolist())
    images = [image for i, (image, _) in enumerate(examples.as_numpy_iterator()) if i in chosen]
    return np.stack(images).astype(np.float32)


# The notebooks that train light models, and how each loads its data set.
SOURCE_NOTEBOOKS = {"01_cats_vs_dogs_feature_extraction": datasets.cats_vs_dogs,
                    "02_animals_mobilenetv2_vs_efficientnetv2": datasets.animals,
                    "05_cifar10_resnet50_vs_mobilenet": lambda s: datasets.cifar10(s, val_fraction=0.3)}


@dataclass
class Source:
    """One light model a notebook trained: its record and saved model, or why they are missing
    (notebook 07, "The light models")."""
    notebook: str
    model: str
    record: dict | None = None
    model_path: Path | None = None
    problem: str | None = None

    @property
    def title(self) -> str:
        return f"{backbones.get(self.model).title} from notebook {self.notebook[:2]}"


def light_models(config: settings.Settings) -> list[Source]:
    """The light models notebooks 01, 02 and 05 saved for this profile, or what is missing (notebook 07,
    "The light models")."""
    found = []
    for notebook in SOURCE_NOTEBOOKS:
        run_it = f"run notebooks/{notebook}.ipynb on the {config.profile} profile"
        kept, _ = records.load_records(config.results_dir / notebook)
        kept = [r for r in kept if r.get("profile") == config.profile and r.get("notebook") == notebook
                and r["model"] in backbones.BACKBONES and backbones.get(r["model"]).light]
        expected = [m for m in settings.PROFILES[notebook][config.profile].models if backbones.get(m).light]
        for model in dict.fromkeys(expected + [r["model"] for r in kept]):
            mine = sorted((r for r in kept if r["model"] == model),
                          key=lambda r: (r.get("variant") is not None, r.get("status") != "ok"))
            source = Source(notebook, model, mine[0] if mine else None)
            if source.record is None:
                source.problem = f"no record: {run_it}"
            elif source.record.get("status") != "ok":
                source.problem = f"its run failed: {run_it} with REDO = True"
            elif not source.record.get("model_file"):
                source.problem = f"the model was not saved: {run_it} with REDO = True (and SAVE_MODELS = True)"
            else:
                source.model_path = config.results_dir / notebook / source.record["model_file"]
                if not source.model_path.exists():
                    source.problem = f"{source.model_path} is missing: {run_it} with REDO = True"
            found.append(source)
    return found


def training_data(record: dict) -> datasets.ImageData:
    """The data set a model was trained on, split as its notebook split it, same settings and seed
    (notebook 07, "Each model, and the data it was trained on")."""
    config = settings.resolve(  # nothing trains here: the full profile's stop on a CPU is moot
        record["notebook"], profile=record["profile"], image_size=record["image_size"], limit=record["limit"],
        seed=record["seed"], data_dir=record["data_dir"], batch_size=record["batch_size"], check_hardware=False)
    return SOURCE_NOTEBOOKS[record["notebook"]](config)


# What a converted model's record takes from the record of the model it was made from.
FROM_SOURCE = ("article", "dataset", "image_size", "batch_size", "epochs", "fine_tune_epochs", "optimizer",
               "learning_rate", "fine_tune_learning_rate", "train_accuracy", "train_loss", "trainable_params",
               "total_params", "train_seconds", "skipped_files", "seed", "limit", "weights", "data_dir",
               "split_fingerprint", "class_names")


def record_path(config: settings.Settings, source: Source, kind: str) -> Path:
    """Where a converted model's record goes, e.g. mobilenet_v2__tflite-int8__from-01.json (07, "Running them
    in LiteRT", "Checks")."""
    return records.record_path(config, source.model, f"tflite-{kind}", f"from-{source.notebook[:2]}")


def new_record(config: settings.Settings, source: Source, kind: str, tflite,
               val: evaluate.Predictions, test: evaluate.Predictions, **values) -> dict:
    """A converted model's record (notebook 07, "Running them in LiteRT"): its own measurements (`tflite` is
    called like the Keras model and has `input_shape` and `size_mb`), and its source's training facts."""
    return records.new_record(
        config, source.model, f"tflite-{kind}", variant=f"from-{source.notebook[:2]}",
        title=f"{source.title}, LiteRT {kind}", **{field: source.record.get(field) for field in FROM_SOURCE},
        val_accuracy=val.accuracy, val_loss=val.loss, test_accuracy=test.accuracy, test_loss=test.loss,
        inference_ms_per_image=evaluate.latency_ms(tflite), throughput_batch_size=32,
        throughput_images_per_s=evaluate.throughput(tflite, batch_size=32, repeats=5, max_seconds=1.0),
        device=device_name(), model_size_mb=tflite.size_mb, **values)
