"""Predictions on your own images from a shell, with any model a notebook saved (decoded as in
training; broken and non-image files listed with their reason):

    python -m course.predict results/smoke/01_cats_vs_dogs_feature_extraction/mobilenet_v2__frozen.keras my_photos/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from helpers import (
    evaluate,
    folders,
    layers,  # noqa: F401  registers InferenceMode, which saved models may hold
    pipelines,
    progress,
    records,
)
from helpers.errors import CourseError


def load_model(path: Path | str) -> tuple[keras.Model, list[str]]:
    """A saved model and its class names from the record beside it ("class 0", ... without)."""
    path = Path(path)
    give = "give the .keras file a notebook saved beside its record."
    if not path.is_file():
        raise CourseError(f"{path} is not a file; {give}")
    try:
        model = keras.models.load_model(path)
    except Exception as error:  # Keras raises many kinds here; the user needs one sentence
        name = type(error).__name__
        raise CourseError(f"{path} could not be loaded as a Keras model ({name}); {give}") from None
    shape, outputs = model.input_shape, model.output_shape
    if not (isinstance(shape, tuple) and len(shape) == 4 and shape[1] and shape[3] == 3
            and len(outputs) == 2):
        raise CourseError(f"{path} is not an image classifier (input {shape}, output {outputs}); "
                          "give a .keras file a notebook saved.")
    count = 2 if outputs[1] == 1 else int(outputs[1])
    record_file = path.with_suffix(".json")
    try:
        names = records.read_record(record_file).get("class_names") or []
    except ValueError:
        names = []
    if len(names) != count:
        why = "is not beside the model"
        if record_file.exists():
            why = f"does not name its {count} classes"
        names = [f"class {k}" for k in range(count)]
        print(f"The record {record_file.name} {why}, so the classes are called "
              f"{', '.join(names)}.", file=sys.stderr)
    return model, list(names)


def find_files(paths: Sequence[Path | str]) -> list[Path]:
    """The files named, and the image files below the folders named (by the rules of `folders.data_files`)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += [p for p in folders.data_files(path)
                      if p.suffix.lower() in folders.IMAGE_SUFFIXES and p.is_file()]
        elif path.is_file():
            files.append(path)
        else:
            raise CourseError(f"{path} does not exist; give image files or folders that hold them.")
    return files


def load_images(files: Sequence[Path | str], size: int) -> tuple[np.ndarray, list[str | None]]:
    """Each file decoded as training does (zeros when unreadable), and its problem or None."""
    images = np.zeros((len(files), size, size, 3), np.uint8)
    problems: list[str | None] = []
    for k, file in enumerate(progress.bar(files, len(files), "reading the images")):
        usable, problem, _ = folders.check_image(Path(file))  # odd formats converted to RGB
        if usable is not None:
            try:
                images[k] = pipelines.decode_resize(tf.io.read_file(usable), size).numpy()
            except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
                problem = "cannot be decoded"
        problems.append(problem)
    return images, problems


def predict_paths(model: keras.Model, class_names: Sequence[str], paths: Sequence[Path | str], *,
                  top: int = 3, batch_size: int = 32) -> pd.DataFrame:
    """One row per file: file, prediction, probability, the `top` classes (multi-class models
    only) and the problem that kept it from being predicted ("" when read)."""
    files = find_files(paths)
    if not files:
        raise CourseError(f"No files found in {', '.join(map(str, paths))}; give image files or "
                          "folders that hold them.")
    roots = [Path(p) for p in paths if Path(p).is_dir()]
    size = int(model.input_shape[1])
    images, problems = load_images(files, size)
    good = [k for k, problem in enumerate(problems) if problem is None]
    probs = np.zeros((len(files), len(class_names)))
    if good:
        picked = images[good].astype(np.float32)
        logits = np.concatenate([
            keras.ops.convert_to_numpy(model(picked[i:i + batch_size], training=False))
            for i in range(0, len(picked), batch_size)
        ]).astype(np.float64)
        if logits.shape[1] != (1 if len(class_names) == 2 else len(class_names)):
            raise CourseError(f"The model has {logits.shape[1]} output(s) but {len(class_names)} "
                              "class names were given; give one name per class.")
        probs[good] = evaluate.probabilities(logits)
    rows = []
    for k, file in enumerate(files):
        root = next((r for r in roots if r in file.parents), None)  # shown inside the folder given
        row = {"file": str(file.relative_to(root) if root else file), "prediction": None, "probability": np.nan}
        if problems[k] is None:
            best = np.argsort(-probs[k], kind="stable")
            row.update(prediction=class_names[best[0]], probability=float(probs[k, best[0]]))
            if len(class_names) > 2 and top > 0:
                row["top"] = ", ".join(f"{class_names[c]}: {probs[k, c]:.3f}" for c in best[:top])
        row["problem"] = problems[k] or ""
        rows.append(row)
    columns = ["file", "prediction", "probability"] + (["top"] if len(class_names) > 2 and top > 0 else [])
    return pd.DataFrame(rows, columns=columns + ["problem"])


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: print the table (and write it with --csv); 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m course.predict",
                                     description="Predict the class of your own images with a saved model.")
    parser.add_argument("model", help="the .keras file a notebook saved")
    parser.add_argument("paths", nargs="+", help="image files or folders of them (searched recursively)")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    parser.add_argument("--top", type=int, default=3, help="classes listed per image (multi-class models)")
    args = parser.parse_args(argv)
    try:
        model, class_names = load_model(args.model)
        table = predict_paths(model, class_names, args.paths, top=args.top)
    except CourseError as error:
        print(error, file=sys.stderr)
        return 2
    print(table.to_string(index=False, float_format=lambda p: f"{p:.3f}", na_rep=""), flush=True)
    broken = int((table["problem"] != "").sum())
    if broken:
        print(f"{broken} of {len(table)} files could not be read (see the problem column).", flush=True)
    if args.csv:  # after the table is shown: nothing computed is lost when the file cannot be written
        try:
            table.to_csv(args.csv, index=False)
        except OSError as error:
            print(f"Cannot write {args.csv} ({error.strerror or error}); give a path in a folder that exists.",
                  file=sys.stderr)
            return 2
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
