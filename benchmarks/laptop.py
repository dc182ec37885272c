"""Each notebook's laptop profile timed on this machine, beside the estimate the calibration gives.

    python -m benchmarks.laptop [--only 03 05] [--quick] [-p NAME VALUE ...] [--save-reference NAME]

1. Data sets of the real size, in the formats the notebooks' loaders read, are generated once into
   <cache>/bench-laptop (`helpers.settings.cache_dir()`, outside git): CIFAR-10's pickled batches
   (50,000 + 10,000 images), flower_photos/ (3,670 JPEGs, tf_flowers' class sizes), a five-class
   animal folder (7,000 JPEGs of web-photo sizes) and the article's cats-vs-dogs tree (8,000 + 2,000
   JPEGs). The images are the smoke profile's coloured shapes: learnable, and sized like photos,
   which is what the time depends on.
2. Notebooks 01-05, then 07 (which converts the light models they saved), run headless with
   papermill through `course.run.execute`: PROFILE "laptop", WEIGHTS "none" (random weights, the
   same compute as ImageNet's, nothing to download), DATA_DIR the generated set, RESULTS_DIR a
   scratch folder. Before each, the calibration (`benchmarks.calibration`, a few seconds) gives
   the notebook's estimate from the stored reference, as `make check` prints it.
3. reports/bench/laptop.json: per notebook the minutes measured, the estimate and estimate /
   measured, the calibration and the load average; a run of some notebooks (`--only`) keeps the
   others' earlier entries. `--quick` (a tiny LIMIT, one epoch a phase) checks that the benchmark
   works and measures nothing (laptop-quick.json); `-p` overrides go to laptop-overrides.json.
   `--save-reference NAME` stores the measured minutes and their calibrations as the reference
   NAME (first in the file; a run of some notebooks adds to it).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks import calibration
from course.run import execute, find_notebooks, parameters_of, parse_value
from helpers import settings as course_settings
from helpers.errors import CourseError
from helpers.records import atomic_write, git_commit
from helpers.sources import ANIMAL_CLASSES, CATS_DOGS_CLASSES, CIFAR10_CLASSES, FLOWER_CLASSES

BUDGET_MINUTES = 15
DATA_VERSION = "v1"  # bump when the generator changes: the data sets are then made again
QUICK = {"LIMIT": 100, "EPOCHS": 1, "FINE_TUNE_EPOCHS": 1}  # LIMIT >= notebook 05's batch of 100
LIGHT_MODELS = "07_light_models_on_device"
DATA_OF = {"01_cats_vs_dogs_feature_extraction": "cats_vs_dogs", "02_animals_mobilenetv2_vs_efficientnetv2": "animals",
           "03_cifar10_resnet50_upsampling_finetune": "cifar10", "04_tf_flowers_unfreezing_strategies": "tf_flowers",
           "05_cifar10_resnet50_vs_mobilenet": "cifar10"}
FLOWERS = dict(zip(FLOWER_CLASSES, (633, 898, 641, 699, 799)))  # tf_flowers' 3,670
ANIMALS = dict(zip(ANIMAL_CLASSES, (1400, 1300, 1500, 1350, 1450)))
CATS_DOGS = {"train": 4000, "validation": 1000}  # per class: the article's 8,000 + 2,000
CHUNK = 250  # images per generation task


def _size(dataset: str, rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) like the real photos: tf_flowers mostly landscape 320-500 wide; web photos
    with the long side 300-1024, some portrait; cats_and_dogs about 400x350."""
    if dataset == "tf_flowers":
        width = int(rng.integers(320, 501))
        return width, int(width * rng.uniform(0.6, 0.8))
    if dataset == "animals":
        long_side = int(rng.integers(300, 1025))
        short_side = int(long_side / rng.choice([1.0, 4 / 3, 3 / 2, 16 / 9]))
        return (long_side, short_side) if rng.random() < 0.8 else (short_side, long_side)
    return int(rng.integers(300, 501)), int(rng.integers(250, 451))


@dataclass(frozen=True)
class Task:
    """`count` JPEGs of one class folder, from number `start` on."""
    dataset: str
    folder: str
    label: int
    num_classes: int
    start: int
    count: int


def _write_jpegs(task: Task) -> int:
    """Draw and save one task's JPEGs (in a worker process)."""
    from PIL import Image

    from helpers.samples import draw_sample
    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([sum(map(ord, task.dataset)), sum(map(ord, folder.parent.name + folder.name)), task.start])
    for i in range(task.start, task.start + task.count):
        width, height = _size(task.dataset, rng)
        # drawn at half the size and enlarged: smooth like a photo, and quick to make
        square = draw_sample(task.label, task.num_classes, max(width, height) // 2, rng)
        Image.fromarray(square).resize((width, height), Image.BILINEAR).save(folder / f"{folder.name}.{i:05d}.jpg", quality=90)
    return task.count


def _write_cifar_batch(path: str, count: int, seed: int) -> int:
    """One batch of CIFAR-10's python version: rows of 3x32x32 uint8 and their labels."""
    from helpers.samples import draw_sample
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 10)
    images = np.stack([draw_sample(int(k), 10, 32, rng).transpose(2, 0, 1) for k in labels])
    with open(path, "wb") as handle:
        pickle.dump({b"batch_label": Path(path).name.encode(), b"labels": [int(k) for k in labels],
                     b"data": images.reshape(count, -1), b"filenames": [f"{i}.png".encode() for i in range(count)]},
                    handle, protocol=2)
    return count


def _generate(dataset: str, target: Path, workers: int) -> int:
    """Make one data set in the fresh folder `target`; the number of images."""
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        if dataset == "cifar10":
            folder = target / "cifar-10-batches-py"
            folder.mkdir(parents=True)
            with open(folder / "batches.meta", "wb") as handle:
                pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, handle, protocol=2)
            names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
            futures = [pool.submit(_write_cifar_batch, str(folder / n), 10_000, seed) for seed, n in enumerate(names)]
        else:
            folders = ({target / "flower_photos" / c: n for c, n in FLOWERS.items()} if dataset == "tf_flowers" else
                       {target / c: n for c, n in ANIMALS.items()} if dataset == "animals" else
                       {target / s / c: n for s, n in CATS_DOGS.items() for c in CATS_DOGS_CLASSES})
            classes = sorted({f.name for f in folders})
            futures = [pool.submit(_write_jpegs, Task(dataset, str(f), classes.index(f.name), len(classes), start,
                                                      min(CHUNK, n - start)))
                       for f, n in folders.items() for start in range(0, n, CHUNK)]
        done, shown = 0, time.perf_counter()
        for future in concurrent.futures.as_completed(futures):
            done += future.result()
            if time.perf_counter() - shown > 30:
                print(f"    {dataset}: {done:,} images so far", flush=True)
                shown = time.perf_counter()
    return done


def ensure_data(datasets: list[str], root: Path) -> dict[str, dict]:
    """Generate the data sets that are missing (or made by another generator version)."""
    made = {}
    for dataset in datasets:
        target, started = root / dataset, time.perf_counter()
        marker = target / ".complete"
        if not (marker.exists() and json.loads(marker.read_text()).get("version") == DATA_VERSION):
            print(f"  {dataset}: generating into {target} ...", flush=True)
            shutil.rmtree(target, ignore_errors=True)
            tmp = root / f".{dataset}.{uuid.uuid4().hex}"
            shutil.rmtree(tmp, ignore_errors=True)
            images = _generate(dataset, tmp, os.cpu_count() or 1)
            (tmp / ".complete").write_text(json.dumps({"version": DATA_VERSION, "images": images,
                                                       "seconds": round(time.perf_counter() - started)}) + "\n")
            os.replace(tmp, target)
        made[dataset] = {**json.loads(marker.read_text()), "path": str(target),
                         "seconds_this_run": round(time.perf_counter() - started, 1)}
        print(f"  {dataset}: {made[dataset]['images']:,} images in {target}", flush=True)
    return made


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


@contextlib.contextmanager
def watched(label: str, loads: list[float]):
    """The load average every 5 s while a notebook runs, and a line of progress every 2 minutes."""
    stop, started = threading.Event(), time.perf_counter()

    def loop():
        while not stop.wait(5):
            loads.append(load_average())
            if len(loads) % 24 == 0:
                print(f"    {label}: {(time.perf_counter() - started) / 60:.0f} min, load average {loads[-1]}", flush=True)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def described(stem: str, overrides: dict) -> str:
    """What the notebook runs: the laptop profile's numbers with the overrides."""
    if stem not in DATA_OF:
        return "converts the saved light models"
    known = {"LIMIT", "EPOCHS", "FINE_TUNE_EPOCHS", "IMAGE_SIZE", "BATCH_SIZE"}
    try:
        s = course_settings.resolve(stem, profile="laptop", **{k.lower(): v for k, v in overrides.items() if k in known})
    except CourseError as error:
        return str(error)
    epochs = "/".join(map(str, s.epochs.values())) + (f" + {s.fine_tune_epochs}" if s.fine_tune_epochs else "")
    return f"{s.image_size}px, LIMIT {s.limit}, epochs {epochs}, {len(s.models) * len(s.strategies)} configuration(s)"


def slowest_cells(executed: Path, count: int = 3) -> list[dict]:
    """The executed notebook's slowest code cells: seconds and their first line of code."""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return []
    timed = [{"cell": i, "seconds": round(c["metadata"]["papermill"]["duration"], 1),
              "first_line": next((ln for ln in "".join(c["source"]).splitlines() if ln.strip()
                                  and not ln.lstrip().startswith(("#", "import ", "from "))), "")[:80]}
             for i, c in enumerate(cells) if c["cell_type"] == "code"
             and (c.get("metadata", {}).get("papermill") or {}).get("duration") is not None]
    return sorted(timed, key=lambda c: -c["seconds"])[:count]


def run_notebook(notebook: Path, parameters: dict, folder: Path, results_dir: Path, overrides: dict) -> dict:
    """Calibrate, then execute one notebook headless and time it; never raises for a failing notebook."""
    stem = notebook.stem
    shutil.rmtree(results_dir / stem, ignore_errors=True)  # a fresh run: nothing to resume or skip
    machine = calibration.measure()
    estimate = calibration.estimates([stem], machine["calibration_gflops"]).get(stem) or {}
    print(f"\n{stem}: {described(stem, parameters)}; calibration {machine['calibration_gflops']:g} GFLOP/s, estimate "
          + (f"{estimate['minutes']:g} min (from {estimate['reference']!r})" if estimate else "none"), flush=True)
    loads, before = [], load_average()
    with watched(stem[:2], loads):
        outcome = execute(notebook, folder / f"{stem}.ipynb", parameters, progress=False)
    minutes = outcome.seconds / 60
    entry = {"notebook": stem, "ok": outcome.ok, "error": outcome.error or None, "seconds": round(outcome.seconds, 1),
             "minutes": round(minutes, 2), "within_15_minutes": outcome.ok and minutes <= BUDGET_MINUTES,
             "settings": described(stem, parameters), "calibration": machine, "estimate_minutes": estimate.get("minutes"),
             "estimate_reference": estimate.get("reference"),
             "estimate_over_measured": round(estimate["minutes"] / minutes, 2) if estimate else None,
             "estimate_applies": not overrides, "load_average_before": before, "load_average_after": load_average(),
             "load_average_mean": round(statistics.mean(loads), 2) if loads else None,
             "slowest_cells": slowest_cells(folder / f"{stem}.ipynb"), "git_commit": git_commit(),
             "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    ratio = f", estimate/measured {entry['estimate_over_measured']}" if estimate else ""
    print(f"{stem}: {'ok' if outcome.ok else 'FAILED - ' + outcome.error} in {minutes:.1f} min{ratio}; load "
          f"average {before} -> {entry['load_average_after']} (mean {entry['load_average_mean']})", flush=True)
    for cell in entry["slowest_cells"]:
        print(f"    {cell['seconds']:7.1f} s  cell {cell['cell']}: {cell['first_line']}")
    return entry


def write_report(name: str, payload: dict, entries: list[dict]) -> tuple[Path, list[dict]]:
    """reports/bench/<name>.json; a run of some notebooks keeps the others' earlier entries."""
    path = course_settings.project_root() / "reports" / "bench" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    ran = {e["notebook"] for e in entries}
    earlier = json.loads(path.read_text()).get("notebooks", []) if path.exists() else []
    every = sorted([{**e, "from_earlier_run": True} for e in earlier if e["notebook"] not in ran and "calibration" in e]
                   + entries,
                   key=lambda e: e["notebook"])
    payload = {**payload, "notebooks": every, "all_within_15_minutes": all(e["within_15_minutes"] for e in every)}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n"))
    return path, every


def print_table(entries: list[dict], quick: bool) -> None:
    rows = [["notebook", "settings", "minutes", f"<= {BUDGET_MINUTES}", "estimate", "est/measured", "GFLOP/s",
             "load (mean)"]]
    for e in entries:
        rows.append([e["notebook"][:2] + (" (earlier run)" if e.get("from_earlier_run") else ""), e["settings"],
                     f"{e['minutes']:.1f}", ("yes" if e["within_15_minutes"] else "NO") if e["ok"] else "FAILED",
                     "-" if e["estimate_minutes"] is None else f"{e['estimate_minutes']:g}",
                     "-" if e["estimate_over_measured"] is None else f"{e['estimate_over_measured']:.2f}",
                     f"{e['calibration']['calibration_gflops']:g}", str(e["load_average_mean"])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    print("\n".join(["", "Laptop profile on this machine" + (" -- QUICK RUN: not a measurement, estimates do not "
                                                            "apply" if quick else ""), lines[0], *lines[1:]]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.laptop", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", metavar="PREFIX", help="only these notebooks, e.g. 03 05")
    parser.add_argument("--quick", action="store_true", help=f"tiny overrides {QUICK}: checks the benchmark")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter for every notebook that has it")
    parser.add_argument("--save-reference", metavar="NAME", help="store the measured minutes as reference NAME")
    args = parser.parse_args(argv)

    root = course_settings.project_root()
    notebooks = [p for p in find_notebooks(root / "notebooks", args.only) if p.stem in DATA_OF or p.stem == LIGHT_MODELS]
    if not notebooks:
        print(f"No timed notebook matches {args.only}; choose from 01-05 and 07.")
        return 2
    overrides = {**(QUICK if args.quick else {}), **{k: parse_value(v) for k, v in args.parameter}}
    report = "laptop-quick" if args.quick else "laptop-overrides" if args.parameter else "laptop"
    scratch = Path(os.environ.get("BENCH_SCRATCH", tempfile.gettempdir())) / "bench-laptop" / report
    executed, results = scratch / "notebooks", scratch / "results"
    executed.mkdir(parents=True, exist_ok=True)
    os.environ.update(COURSE_OFFLINE="1", COURSE_HEADLESS="1")
    started, load_before = time.perf_counter(), load_average()
    print(f"Laptop-profile benchmark on {os.cpu_count()} CPU cores, load average {load_before}"
          + ("  [QUICK: tiny LIMIT and epochs, checks the benchmark, not a measurement]" if args.quick else ""))
    data_root = course_settings.cache_dir() / "bench-laptop"
    data = ensure_data(list(dict.fromkeys(DATA_OF[p.stem] for p in notebooks if p.stem in DATA_OF)), data_root)
    entries = []
    for notebook in notebooks:
        base = {"PROFILE": "laptop", "WEIGHTS": "none", "RESULTS_DIR": str(results),
                **({"DATA_DIR": str(data_root / DATA_OF[notebook.stem])} if notebook.stem in DATA_OF else {})}
        declared = parameters_of(notebook)
        entries.append(run_notebook(notebook, {k: v for k, v in {**base, **overrides}.items() if k in declared},
                                    executed, results, overrides))
    payload = {"benchmark": "laptop", "command": " ".join(["python -m benchmarks.laptop", *(sys.argv[1:] if argv is None else argv)]),
               "quick": args.quick, "overrides": overrides, "weights": "none (random: the same compute as ImageNet's)",
               "budget_minutes": BUDGET_MINUTES, "calibration": entries[0]["calibration"], "data": data,
               "reference_file": str(calibration.REFERENCE_FILE), "cpu_count": os.cpu_count(),
               "load_average_before": load_before, "load_average_after": load_average(), "git_commit": git_commit(),
               "seconds": round(time.perf_counter() - started, 1), "executed_notebooks": str(executed),
               "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path, every = write_report(report, payload, entries)
    print_table(every, args.quick)
    print(f"\nload average {load_before} -> {load_average()}; executed notebooks in {executed}\n-> {path}")
    measured = [e for e in entries if e["ok"]]
    if args.save_reference and measured and not overrides:
        details = {"commit": git_commit(), "date": payload["created_at"][:10], "cpu_count": os.cpu_count(),
                   "load_average_mean": {e["notebook"]: e["load_average_mean"] for e in measured}}
        print(f"-> reference {args.save_reference!r} in " + str(calibration.save_reference(
            args.save_reference, {e["notebook"]: e["calibration"]["calibration_gflops"] for e in measured},
            {e["notebook"]: e["minutes"] for e in measured}, details)))
    return 0 if all(e["ok"] for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
