"""This machine's speed against a reference machine's, for an estimate of each notebook's time on
the laptop profile (printed by `course.preflight`: `make check`, `make laptop`; checked by
`python -m benchmarks.laptop`, which writes each estimate beside the time it measures).

The calibration is the float32 GFLOP/s of a dense n x n matmul (2 n^3 FLOPs) with what the course
uses, TensorFlow and NumPy, the faster of the two: the median of a few calls (what a long run can
count on) and the best call (benchmark 4's limit: the most this machine reaches). A notebook's
estimate = its minutes on a reference machine x that machine's calibration / this machine's. The
references, newest first, are in laptop_reference.json beside this file; each notebook is scaled
from the first reference that measured it.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

REFERENCE_FILE = Path(__file__).with_name("laptop_reference.json")
SIZE = 2048  # the calibration's matmul: 17 GFLOPs, a few tenths of a second on two cores


def matmul_gflops(sizes: tuple[int, ...] = (SIZE,), seconds: float = 1.5, repeats: int = 7) -> dict:
    """Per library and size, the median and best GFLOP/s of up to `repeats` timed calls (at least 3,
    within `seconds` each) after one warm-up; `calibration_gflops` is the faster library's median at
    the first size, `limit_gflops` the best call of all."""
    import numpy as np

    from helpers import evaluate
    from helpers.progress import quiet_stderr

    with quiet_stderr():
        import tensorflow as tf
    found: dict = {"tensorflow": {}, "numpy": {}}
    for n in sizes:
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        ta, tb = tf.constant(a), tf.constant(b)
        matmul = tf.function(tf.matmul)
        calls = {"tensorflow": lambda: matmul(ta, tb).numpy(), "numpy": lambda: a @ b}  # noqa: B023
        for library, call in calls.items():
            times = evaluate.call_times(call, repeats=repeats, warmup=1, max_seconds=seconds, at_least=3)
            found[library][n] = {"median": round(2 * n**3 / statistics.median(times) / 1e9, 1),
                                 "best": round(2 * n**3 / min(times) / 1e9, 1)}
    faster = max(found, key=lambda lib: found[lib][sizes[0]]["median"])
    best = max((v["best"], lib, n) for lib in found for n, v in found[lib].items())
    return {"calibration_gflops": found[faster][sizes[0]]["median"], "calibration_library": faster,
            "calibration_n": sizes[0], "limit_gflops": best[0], "limit_from": f"{best[1]}, n={best[2]}",
            "matmul": found, "load_average": round(os.getloadavg()[0], 2)}


def measure() -> dict:
    """The calibration of this machine now: a few seconds (the tests replace it)."""
    return matmul_gflops()


def references(path: Path | None = None) -> list[dict]:
    """The stored references, preferred first; [] when there is no file."""
    path = path or REFERENCE_FILE
    return json.loads(path.read_text())["references"] if path.exists() else []


def estimates(notebooks: list[str], gflops: float) -> dict[str, dict]:
    """Per notebook that a reference measured: its estimated minutes on a machine of `gflops`, and
    the reference it was scaled from (a reference's calibration: one figure, or one per notebook)."""
    found: dict[str, dict] = {}
    for ref in references():
        for notebook in (n for n in notebooks if n in ref["minutes"] and n not in found):
            minutes, at = ref["minutes"][notebook], ref["calibration_gflops"]
            at = at[notebook] if isinstance(at, dict) else at
            found[notebook] = {"minutes": round(minutes * at / gflops, 1), "reference": ref["name"],
                               "reference_minutes": minutes, "reference_gflops": at}
    return found


def save_reference(name: str, gflops: dict[str, float], minutes: dict[str, float], details: dict) -> Path:
    """Store (or add to) reference `name`, first in the file: per notebook its minutes and the
    calibration measured just before it (`python -m benchmarks.laptop --save-reference NAME`)."""
    stored = references()
    entry = next((r for r in stored if r["name"] == name), {"name": name})
    if not isinstance(entry.get("calibration_gflops", {}), dict):
        entry["calibration_gflops"] = dict.fromkeys(entry["minutes"], entry["calibration_gflops"])
    for key, value in {**details, "calibration_gflops": gflops, "minutes": minutes}.items():
        entry[key] = {**entry.get(key, {}), **value} if isinstance(value, dict) else value
    REFERENCE_FILE.write_text(json.dumps({"references": [entry, *(r for r in stored if r["name"] != name)]},
                                         indent=2) + "\n")
    return REFERENCE_FILE


def lines(notebooks: list[str], calibration: dict) -> list[str]:
    """The checklist's lines: about N min on this machine per notebook, and the reference."""
    gflops = calibration["calibration_gflops"]
    found = estimates(notebooks, gflops)
    out = [f"Rough time on this machine (laptop profile): its float32 matmul runs at {gflops:g} GFLOP/s "
           f"now ({calibration['calibration_library']}, n={calibration['calibration_n']}, load average "
           f"{calibration.get('load_average')}); each reference's minutes scaled by its GFLOP/s over this:"]
    for notebook, e in sorted(found.items()):
        out.append(f"  {notebook[:2]}  about {e['minutes']:.0f} min on this machine (scaled from "
                   f"{e['reference']!r}: {e['reference_minutes']:g} min at {e['reference_gflops']:g} GFLOP/s)")
    if found:
        out.append(f"  about {sum(e['minutes'] for e in found.values()):.0f} min in all; a rough guide, as the "
                   "load changes (make bench-laptop writes each estimate beside the time it measures)")
    missing = [n[:2] for n in notebooks if n not in found]
    if missing:
        out.append(f"  no reference has measured {', '.join(missing)}; the laptop profile is sized for "
                   "15 minutes per notebook on two CPU cores")
    return out
