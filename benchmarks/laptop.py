"""Does each notebook's laptop profile finish within 15 minutes on this machine?

`python -m benchmarks.laptop [--only 03 05] [--quick] [-p NAME VALUE ...]` (`make bench-laptop`)

1. Data sets of the real size, in the formats the notebooks' loaders read, are generated
   once into <cache>/bench-laptop (`helpers.config.cache_dir()`: $COURSE_CACHE, else
   ~/.cache/transfer-learning-course; outside git): CIFAR-10's pickled batches (50,000 + 10,000
   images), tf_flowers' flower_photos/ (3,670 JPEGs, its class sizes), a five-class animal
   folder (7,000 web-photo-sized JPEGs) and the article's cats-vs-dogs tree (8,000 + 2,000 JPEGs).
   The images are coloured shapes (`helpers.samples.draw_sample`): learnable, and sized like
   photos, which is what the timing depends on.
2. Notebooks 01-05, then 07 (which converts the light models they saved), run headless with
   papermill exactly as `helpers.run` runs them, with PROFILE="laptop", WEIGHTS="none" (random
   weights: the same compute as ImageNet's, nothing to download), DATA_DIR=<the generated set>
   and RESULTS_DIR=<a scratch folder>; COURSE_OFFLINE=1 and COURSE_HEADLESS=1.
3. Each notebook's wall time is printed against the 15-minute budget with what else used the
   CPUs meanwhile, and written to reports/bench/laptop.json with the slowest cells of each
   executed notebook (where its time went).

`--quick` runs every notebook with a tiny LIMIT and one epoch per phase: it checks that the
benchmark works (in a few minutes once the data exist), it measures nothing, and it writes
reports/bench/laptop-quick.json. `-p NAME VALUE` overrides a parameter in every notebook that
has it (e.g. `-p LIMIT 600 -p EPOCHS 3`) and writes reports/bench/laptop-overrides.json, so
the profile's own measurement is kept. A run of some notebooks (`--only`) keeps the other
notebooks' earlier entries of the same report.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pickle
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from helpers import config, results
from helpers.run import execute, find_notebooks, parse_value

BUDGET_MINUTES = 15
DATA_VERSION = "v1"  # bump when the generator changes: the data sets are then made again
QUICK = {"LIMIT": 100, "EPOCHS": 1, "FINE_TUNE_EPOCHS": 1}  # LIMIT >= notebook 01's batch of 100
LIGHT_MODELS = "07_light_models_on_device"
HEARTBEAT_SECONDS = 120

# ------------------------------------------------------------------------- data sets

FLOWERS = {"daisy": 633, "dandelion": 898, "roses": 641, "sunflowers": 699, "tulips": 799}
ANIMALS = {"cat": 1400, "cow": 1300, "dog": 1500, "elephant": 1350, "horse": 1450}
CATS_DOGS = {"train": 4000, "validation": 1000}  # per class: the article's 8,000 + 2,000


def _flower_size(rng: np.random.Generator) -> tuple[int, int]:
    """tf_flowers: mostly landscape, about 320x240 to 500x375."""
    width = int(rng.integers(320, 501))
    return width, int(width * rng.uniform(0.6, 0.8))


def _animal_size(rng: np.random.Generator) -> tuple[int, int]:
    """Web photos: the long side 300-1024 pixels, common aspect ratios, some portrait."""
    long_side = int(rng.integers(300, 1025))
    short_side = int(long_side / rng.choice([1.0, 4 / 3, 3 / 2, 16 / 9]))
    return (long_side, short_side) if rng.random() < 0.8 else (short_side, long_side)


def _cats_dogs_size(rng: np.random.Generator) -> tuple[int, int]:
    """cats_and_dogs_filtered: about 400x350 on average."""
    return int(rng.integers(300, 501)), int(rng.integers(250, 451))


SIZES: dict[str, Callable[[np.random.Generator], tuple[int, int]]] = {
    "tf_flowers": _flower_size, "animals": _animal_size, "cats_vs_dogs": _cats_dogs_size,
}
# notebook -> the generated data set its DATA_DIR points at
DATA_OF = {
    "01_cifar10_resnet50_vs_mobilenet": "cifar10",
    "02_cifar10_resnet50_upsampling_finetune": "cifar10",
    "03_tf_flowers_unfreezing_strategies": "tf_flowers",
    "04_animals_mobilenetv2_vs_efficientnetv2": "animals",
    "05_cats_vs_dogs_feature_extraction": "cats_vs_dogs",
}
CHUNK = 250  # images per generation task


@dataclass(frozen=True)
class Task:
    """Part of one class folder: `count` JPEGs from number `start` on."""

    dataset: str
    folder: str
    label: int
    num_classes: int
    start: int
    count: int


def data_root() -> Path:
    """Where the generated data sets are kept (outside git)."""
    return config.cache_dir() / "bench-laptop"


def _jpeg_tasks(dataset: str, root: Path) -> list[Task]:
    """The generation tasks of one image-folder data set, in its loader's layout."""
    if dataset == "tf_flowers":
        folders = {root / "flower_photos" / c: n for c, n in FLOWERS.items()}
    elif dataset == "animals":
        folders = {root / c: n for c, n in ANIMALS.items()}
    else:
        folders = {root / split / c: n for split, n in CATS_DOGS.items() for c in ("cats", "dogs")}
    classes = sorted({folder.name for folder in folders})
    return [Task(dataset, str(folder), classes.index(folder.name), len(classes), start,
                 min(CHUNK, count - start))
            for folder, count in folders.items() for start in range(0, count, CHUNK)]


def _write_jpegs(task: Task) -> int:
    """Draw and save one task's JPEGs (a worker process); returns the bytes written."""
    from PIL import Image

    from helpers.samples import draw_sample

    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    seed = [sum(map(ord, task.dataset)), sum(map(ord, folder.parent.name + folder.name)), task.start]
    rng = np.random.default_rng(seed)
    written = 0
    for i in range(task.start, task.start + task.count):
        width, height = SIZES[task.dataset](rng)
        # drawn at half the size and enlarged: smooth like a photo, and quick to make
        square = draw_sample(task.label, task.num_classes, max(width, height) // 2, rng)
        path = folder / f"{folder.name}.{i:05d}.jpg"
        Image.fromarray(square).resize((width, height), Image.BILINEAR).save(path, quality=90)
        written += path.stat().st_size
    return written


def _write_cifar_batch(path: str, count: int, seed: int) -> int:
    """One batch of CIFAR-10's python version: rows of 3x32x32 uint8 and their labels."""
    from helpers.samples import draw_sample

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 10)
    images = np.stack([draw_sample(int(k), 10, 32, rng).transpose(2, 0, 1) for k in labels])
    batch = {b"batch_label": Path(path).name.encode(), b"labels": [int(k) for k in labels],
             b"data": images.reshape(count, -1), b"filenames": [f"{i}.png".encode() for i in range(count)]}
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)
    return Path(path).stat().st_size


def _generate(dataset: str, target: Path, workers: int) -> tuple[int, int]:
    """Make one data set in `target` (a fresh folder); returns (images, bytes)."""
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        if dataset == "cifar10":
            folder = target / "cifar-10-batches-py"
            folder.mkdir(parents=True)
            names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
            futures = [pool.submit(_write_cifar_batch, str(folder / name), 10_000, seed)
                       for seed, name in enumerate(names)]
            sizes = [10_000] * len(names)
            from helpers.setup import quiet_stderr

            with quiet_stderr():  # helpers.data imports TensorFlow, which announces itself
                from helpers.data import CIFAR10_CLASSES
            with open(folder / "batches.meta", "wb") as handle:
                pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                             b"num_cases_per_batch": 10_000, b"num_vis": 3072}, handle, protocol=2)
        else:
            tasks = _jpeg_tasks(dataset, target)
            futures = [pool.submit(_write_jpegs, task) for task in tasks]
            sizes = [task.count for task in tasks]
        total, done, written, shown = sum(sizes), 0, 0, time.perf_counter()
        count_of = dict(zip(futures, sizes))
        for future in concurrent.futures.as_completed(futures):
            written += future.result()
            done += count_of[future]
            if time.perf_counter() - shown > 10 or done == total:
                print(f"    {dataset}: {done:,} / {total:,} images", flush=True)
                shown = time.perf_counter()
    return total, written


def ensure_data(datasets: list[str], root: Path, workers: int) -> dict[str, dict]:
    """Generate the data sets that are missing (or were made by another generator version);
    returns, per data set, its folder, images, bytes and the seconds spent making it now."""
    made = {}
    for dataset in datasets:
        target = root / dataset
        marker = target / ".complete"
        if marker.exists() and json.loads(marker.read_text()).get("version") == DATA_VERSION:
            info = json.loads(marker.read_text())
            made[dataset] = {**info, "path": str(target), "seconds_now": 0.0, "generated_now": False}
            print(f"  {dataset}: {info['images']:,} images in {target} (generated earlier)")
            continue
        print(f"  {dataset}: generating into {target} ...", flush=True)
        shutil.rmtree(target, ignore_errors=True)
        tmp = root / f".{dataset}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.perf_counter()
        images, size = _generate(dataset, tmp, workers)
        seconds = round(time.perf_counter() - started, 1)
        info = {"version": DATA_VERSION, "images": images, "bytes": size, "seconds": seconds,
                "created_at": _now()}
        (tmp / ".complete").write_text(json.dumps(info) + "\n")
        os.replace(tmp, target)
        made[dataset] = {**info, "path": str(target), "seconds_now": seconds, "generated_now": True}
        print(f"  {dataset}: {images:,} images, {size / 2**20:,.0f} MB in {seconds:.0f} s", flush=True)
    return made


# ------------------------------------------------------------------------- watching


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


class Watch:
    """While a notebook runs: load averages, the CPU seconds of this process and its kernel,
    and of everything else on the machine (psutil, when installed), plus a line of progress
    every `HEARTBEAT_SECONDS`."""

    def __init__(self, label: str, executed: Path):
        self.label, self.executed = label, executed
        self.loads: list[float] = []
        self.ours: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Watch:
        self.started = time.perf_counter()
        self.load_before = load_average()
        self.busy_before = _busy_cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.perf_counter() - self.started
        self.load_after = load_average()
        self.busy_after = _busy_cpu_seconds()

    def _sample(self) -> None:
        load = load_average()
        if load is not None:
            self.loads.append(load)
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                t = process.cpu_times()
            except psutil.Error:
                continue
            used = t.user + t.system
            if process.pid != me.pid:  # this process's reaped children are earlier notebooks' kernels
                used += getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
            self.ours[process.pid] = max(used, self.ours.get(process.pid, 0.0))

    def _loop(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(3):
            self._sample()
            if time.perf_counter() - last >= HEARTBEAT_SECONDS:
                last = time.perf_counter()
                print(f"    {self.label}: {(last - self.started) / 60:.1f} min, {_cells_done(self.executed)}, "
                      f"load average {load_average()}", flush=True)

    def summary(self, own_before: float) -> dict:
        """What else used the machine: load averages, and the share of all cores that other
        processes took (CPU seconds of the machine minus ours, over cores x wall seconds)."""
        out = {"load_average_before": self.load_before, "load_average_after": self.load_after,
               "load_average_mean": round(float(np.mean(self.loads)), 2) if self.loads else None,
               "load_average_max": max(self.loads) if self.loads else None}
        if self.busy_before is not None and self.busy_after is not None and self.ours:
            ours = sum(self.ours.values()) - own_before
            others = max(0.0, self.busy_after - self.busy_before - ours)
            cores = os.cpu_count() or 1
            share = min(1.0, others / (cores * self.seconds))
            out.update(cpu_seconds_ours=round(ours, 1), cpu_seconds_others=round(others, 1),
                       others_share_of_cores=round(share, 3),
                       estimated_seconds_alone=alone_range(self.seconds, share, ours))
        return out


def alone_range(seconds: float, others_share: float, ours: float) -> list[float]:
    """A rough range for a run with the machine to itself: what was left to the notebook
    (the wall time less the others' share: perfect use of every core) up to its own CPU seconds
    (no parallelism at all), never above the time measured."""
    low = seconds * (1 - others_share)
    return [round(low, 1), round(min(seconds, max(low, ours)), 1)]


def _busy_cpu_seconds() -> float | None:
    """CPU seconds every core of the machine has spent busy since boot (psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _own_cpu_seconds() -> float:
    try:
        import psutil
    except ImportError:
        return 0.0
    t = psutil.Process().cpu_times()
    return t.user + t.system


def _cells_done(executed: Path) -> str:
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return "starting"
    code = [c for c in cells if c["cell_type"] == "code"]
    done = sum(c.get("metadata", {}).get("papermill", {}).get("status") == "completed" for c in code)
    return f"{done} of {len(code)} code cells done"


# ------------------------------------------------------------------------- notebooks


def declared_parameters(notebook: Path) -> set[str]:
    """The names the notebook's parameters cell assigns."""
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            return set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", source, flags=re.MULTILINE))
    return set()


def effective_settings(stem: str, parameters: dict) -> dict:
    """The numbers the notebook will use: the laptop profile's, with the overrides applied."""
    if stem not in DATA_OF:
        return {}
    keys = {"LIMIT": "limit", "EPOCHS": "epochs", "FINE_TUNE_EPOCHS": "fine_tune_epochs",
            "IMAGE_SIZE": "image_size", "BATCH_SIZE": "batch_size", "MODELS": "models",
            "STRATEGIES": "strategies"}
    given = {keys[k]: v for k, v in parameters.items() if k in keys}
    try:
        s = config.resolve(stem, profile="laptop", **given)
    except config.CourseError as error:
        return {"problem": str(error)}
    return {"image_size": s.image_size, "limit": s.limit, "epochs": s.epochs,
            "fine_tune_epochs": s.fine_tune_epochs, "batch_size": s.batch_size,
            "models": list(s.models), "strategies": list(s.strategies)}


def describe_settings(settings: dict) -> str:
    if not settings:
        return "converts the saved light models"
    if "problem" in settings:
        return settings["problem"]
    epochs = "/".join(str(e) for e in settings["epochs"].values())
    if settings["fine_tune_epochs"]:
        epochs += f" + {settings['fine_tune_epochs']} fine-tune"
    extra = f", {len(settings['strategies'])} strategies" if len(settings["strategies"]) > 1 else ""
    return f"{settings['image_size']}px, LIMIT {settings['limit']}, epochs {epochs}{extra}"


def slowest_cells(executed: Path, count: int = 5) -> list[dict]:
    """The executed notebook's slowest code cells: seconds and their first line."""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return []
    timed = []
    for index, cell in enumerate(cells):
        seconds = (cell.get("metadata", {}).get("papermill", {}) or {}).get("duration")
        if cell["cell_type"] == "code" and seconds is not None:
            lines = [ln for ln in "".join(cell["source"]).splitlines()
                     if ln.strip() and not ln.lstrip().startswith(("#", "import ", "from "))]
            timed.append({"cell": index, "seconds": round(seconds, 1), "first_line": (lines or [""])[0][:90]})
    return sorted(timed, key=lambda c: -c["seconds"])[:count]


def error_tail(executed: Path, lines: int = 6) -> list[str]:
    """The last lines of the first error's traceback in the executed notebook."""
    try:
        cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return []
    for cell in cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                text = "\n".join(output.get("traceback", []))
                text = re.sub(r"\x1b\[[0-9;]*m", "", text)
                return [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return []


def record_summaries(record_dir: Path) -> list[dict]:
    """Per result record the notebook wrote: what trained, for how long, how well."""
    found = []
    for path in sorted(record_dir.glob("*.json")):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.append({"title": r.get("title"), "train_seconds": r.get("train_seconds"),
                      "epochs": r.get("epochs"), "fine_tune_epochs": r.get("fine_tune_epochs"),
                      "epochs_ran": len((r.get("history") or {}).get("rows") or []),
                      "phase_seconds": {ph.get("phase"): round(ph.get("seconds") or 0.0, 1)
                                        for ph in r.get("phases") or []},
                      "test_accuracy": r.get("test_accuracy"), "status": r.get("status", "ok")})
    return found


def run_notebook(notebook: Path, parameters: dict, folder: Path, results_dir: Path) -> dict:
    """Execute one notebook headless and time it; never raises for a failing notebook."""
    stem = notebook.stem
    shutil.rmtree(results_dir / stem, ignore_errors=True)  # a fresh run: nothing to resume or skip
    executed = folder / f"{stem}.ipynb"
    executed.unlink(missing_ok=True)
    print(f"\n{stem}: running with {_shown(parameters)}", flush=True)
    own_before = _own_cpu_seconds()
    with Watch(stem[:2], executed) as watch:
        outcome = execute(notebook, executed, parameters, progress=False)
    seconds = round(outcome.seconds, 1)
    within = outcome.ok and seconds <= BUDGET_MINUTES * 60
    entry = {
        "notebook": stem, "ok": outcome.ok, "error": outcome.error or None,
        "error_tail": error_tail(executed) if not outcome.ok else [],
        "seconds": seconds, "minutes": round(seconds / 60, 2), "within_15_minutes": within,
        "parameters": parameters, "settings": effective_settings(stem, parameters),
        **watch.summary(own_before),
        "slowest_cells": slowest_cells(executed), "records": record_summaries(results_dir / stem),
        "executed_notebook": str(executed), "created_at": _now(), "git_commit": results.git_commit(),
    }
    status = "ok" if outcome.ok else f"FAILED: {outcome.error}"
    print(f"{stem}: {status} in {seconds:.0f} s ({seconds / 60:.1f} min); load average "
          f"{entry['load_average_before']} -> {entry['load_average_after']}", flush=True)
    for line in entry["error_tail"]:
        print(f"    | {line}")
    for cell in entry["slowest_cells"][:3]:
        print(f"    {cell['seconds']:7.1f} s  cell {cell['cell']}: {cell['first_line']}")
    return entry


def _shown(parameters: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in parameters.items() if k not in ("DATA_DIR", "RESULTS_DIR"))


# ------------------------------------------------------------------------- output


def print_table(entries: list[dict], quick: bool) -> None:
    rows = [["notebook", "settings", "seconds", "minutes", f"<= {BUDGET_MINUTES} min",
             "load avg (mean)", "others' CPU", "alone (est.)"]]
    for e in entries:
        share = e.get("others_share_of_cores")
        alone = None if share is None else alone_range(e["seconds"], share, e["cpu_seconds_ours"])
        rows.append([e["notebook"][:2] + (" (earlier run)" if e.get("from_earlier_run") else ""),
                     describe_settings(e["settings"]), f"{e['seconds']:.0f}", f"{e['minutes']:.1f}",
                     ("yes" if e["within_15_minutes"] else "NO") if e["ok"] else "FAILED",
                     str(e.get("load_average_mean")), "-" if share is None else f"{share:.0%}",
                     "-" if alone is None else f"{alone[0] / 60:.1f}-{alone[1] / 60:.1f} min"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    rule = "-" * len(lines[0])
    title = "Laptop profile on this machine" + (" -- QUICK RUN: tiny LIMIT and epochs, not a measurement"
                                               if quick else "")
    print("\n".join(["", title, rule, lines[0], rule, *lines[1:], rule]))
    print("  others' CPU: the share of all cores other processes used meanwhile. alone (est.): a rough\n"
          "  range for the machine to itself, from the time less the others' share (every core used)\n"
          "  to the notebook's own CPU seconds (one core used).")


def _versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "numpy", "pillow", "papermill", "psutil"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_report(name: str, payload: dict, entries: list[dict]) -> Path:
    """reports/bench/<name>.json; a run of some notebooks keeps the others' earlier entries."""
    folder = config.project_root() / "reports" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    ran = {e["notebook"] for e in entries}
    earlier = []
    if path.exists():
        try:
            earlier = [{**e, "from_earlier_run": True}
                       for e in json.loads(path.read_text(encoding="utf-8")).get("notebooks", [])
                       if e["notebook"] not in ran]
        except (OSError, ValueError, KeyError):
            earlier = []
    every = sorted(earlier + entries, key=lambda e: e["notebook"])
    payload = {**payload, "notebooks": every,
               "all_within_15_minutes": all(e["within_15_minutes"] for e in every),
               "seconds_per_notebook": {e["notebook"]: e["seconds"] for e in every}}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.laptop",
        description=f"Time each notebook's laptop profile on generated real-size data "
                    f"(budget: {BUDGET_MINUTES} minutes each).")
    parser.add_argument("--only", nargs="*", metavar="PREFIX", help="only these notebooks, e.g. 03 05")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny overrides {QUICK}: checks the benchmark, measures nothing")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a parameter for every notebook that has it")
    parser.add_argument("--data", type=Path, default=None, help=f"data sets folder (default {data_root()})")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="executed notebooks and records (default: <temp>/bench-laptop)")
    parser.add_argument("--report", default=None, help="report name (default laptop, laptop-quick "
                        "with --quick, laptop-overrides with -p)")
    parser.add_argument("--show", action="store_true", help="only print the table of the last report")
    args = parser.parse_args(argv)

    command = "python -m benchmarks.laptop" + (" " + " ".join(sys.argv[1:] if argv is None else argv)).rstrip()
    root = config.project_root()
    notebooks = [p for p in find_notebooks(root / "notebooks", args.only)
                 if p.stem in DATA_OF or p.stem == LIGHT_MODELS]
    if not notebooks:
        print(f"No measured notebook matches {args.only}; choose from 01-05 and 07.")
        return 2
    overrides = dict(QUICK) if args.quick else {}
    overrides.update({name: parse_value(value) for name, value in args.parameter})
    report = args.report or ("laptop-quick" if args.quick else "laptop-overrides" if args.parameter else "laptop")
    if args.show:
        path = root / "reports" / "bench" / f"{report}.json"
        if not path.exists():
            print(f"No report at {path} yet.")
            return 1
        saved = json.loads(path.read_text(encoding="utf-8"))
        print_table(saved["notebooks"], saved.get("quick", False))
        print(f"({path}, {saved['created_at']})")
        return 0
    data_dir = (args.data or data_root()).expanduser().resolve()
    scratch = (args.scratch or Path(os.environ.get("BENCH_SCRATCH", tempfile.gettempdir())) / "bench-laptop")
    scratch = scratch.expanduser().resolve() / report
    executed_dir, results_dir = scratch / "notebooks", scratch / "results"
    executed_dir.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(COURSE_OFFLINE="1", COURSE_HEADLESS="1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    started, load_before = time.perf_counter(), load_average()
    cores = os.cpu_count() or 1
    print(f"Laptop-profile benchmark on {cores} CPU cores, load average {load_before}"
          + ("  [QUICK: tiny LIMIT and epochs, checks the benchmark, not a measurement]" if args.quick else ""))
    print(f"Data sets in {data_dir}:", flush=True)
    datasets = list(dict.fromkeys(DATA_OF[p.stem] for p in notebooks if p.stem in DATA_OF))
    data = ensure_data(datasets, data_dir, workers=cores)
    data_seconds = round(time.perf_counter() - started, 1)

    entries = []
    for notebook in notebooks:
        base = {"PROFILE": "laptop", "WEIGHTS": "none", "RESULTS_DIR": str(results_dir)}
        if notebook.stem in DATA_OF:
            base["DATA_DIR"] = str(data_dir / DATA_OF[notebook.stem])
        declared = declared_parameters(notebook)
        parameters = {k: v for k, v in {**base, **overrides}.items() if k in declared}
        entries.append(run_notebook(notebook, parameters, executed_dir, results_dir))
    unused = [k for k in overrides if not any(k in e["parameters"] for e in entries)]
    if unused:
        print(f"\nNo notebook run has the parameter(s) {', '.join(unused)}: they were not used.")

    payload = {
        "benchmark": "laptop", "command": command, "quick": args.quick,
        "note": ("QUICK RUN: LIMIT and epochs shrunk to check the benchmark; the times measure nothing"
                 if args.quick else f"each notebook's laptop profile against a {BUDGET_MINUTES}-minute budget"),
        "budget_minutes": BUDGET_MINUTES, "overrides": overrides,
        "weights": "none (random: the same compute as ImageNet's)",
        "data": {"root": str(data_dir), "datasets": data, "seconds_this_run": data_seconds},
        "scratch": str(scratch),
        "machine": {"cpu_count": cores, "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": load_average()},
        "versions": _versions(), "git_commit": results.git_commit(), "created_at": _now(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = write_report(report, payload, entries)
    every = json.loads(path.read_text(encoding="utf-8"))["notebooks"]
    print_table(every, args.quick)
    print(f"\nData generation {data_seconds:.0f} s (not counted); notebooks {sum(e['seconds'] for e in entries):.0f} s; "
          f"load average {load_before} -> {load_average()}.\nExecuted notebooks in {executed_dir}\n-> {path}")
    return 0 if all(e["ok"] for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main())
