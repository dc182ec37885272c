"""Several units at once on Ray (`python -m course.run --workers N [--address ADDR]`): a local Ray
instance on this machine, or an existing cluster. Ray places each unit (one GPU each where there are
GPUs), the longest units start first, and a unit whose kernel or worker process dies runs once more,
resuming from its backups. Ray is an optional extra: `pip install -e .[cluster]`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from course.preflight import GPU_HOURS
from helpers.errors import CourseError

RAY_MISSING = ("--workers needs Ray, which is not installed here; install it with "
               "`pip install -e .[cluster]` (or `pip install ray`), or run without --workers.")
# what the notebooks' kernels read from the environment, handed to every Ray worker
PASSED_ON = ("COURSE_", "NB_", "KERAS_HOME", "TFDS_DATA_DIR", "XDG_CACHE_HOME", "HTTPS_PROXY", "HTTP_PROXY")


class UnitDied(Exception):
    """A unit's notebook kernel died (killed, or out of memory): Ray runs the unit once more."""


def longest_first(units: list, estimate: Callable[[str], float] | None = None) -> list:
    """The units ordered by estimated duration, longest first: a notebook's estimate (`GPU_HOURS`)
    shared equally among its units (notebook 04 split into configurations)."""
    estimate = estimate or (lambda notebook: GPU_HOURS.get(notebook, 0.0))
    counts = {u.notebook: sum(v.notebook == u.notebook for v in units) for u in units}
    return sorted(units, key=lambda u: -estimate(u.notebook) / counts[u.notebook])


def _run_remotely(run_one: Callable, unit):
    outcome = run_one(unit)
    if outcome.died:
        print(f"{unit.name}: {outcome.error}; Ray runs it once more, from its backups.", flush=True)
        raise UnitDied(outcome.error)
    return outcome


def run_all(units: list, run_one: Callable, workers: int, address: str | None, failed: Callable) -> list:
    """Run every unit with `run_one(unit) -> Outcome` on Ray, at most `workers` at once; a unit that
    fails twice becomes `failed(unit, error_text)`. Returns the outcomes in the order they finished."""
    try:
        import ray
    except ImportError:
        raise CourseError(RAY_MISSING) from None
    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no colour codes in logs and reports
    if address:  # the cluster's workers get the course's settings; local ones inherit them
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ON)}
        ray.init(address=address, runtime_env={"env_vars": env}, logging_level="ERROR")
    else:
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR")
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        print(f"Ray: {len(units)} units, up to {workers} at once on "
              f"{f'{gpus:g} GPUs' if gpus else 'CPUs'} ({address or 'this machine'}).", flush=True)
        task = ray.remote(max_retries=1, retry_exceptions=[UnitDied])(_run_remotely).options(
            **({"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}))
        queue, running, outcomes = longest_first(units), {}, []
        while queue or running:
            while queue and len(running) < workers:
                unit = queue.pop(0)
                running[task.remote(run_one, unit)] = unit
            done, _ = ray.wait(list(running), num_returns=1)
            unit = running.pop(done[0])
            try:
                outcomes.append(ray.get(done[0]))
            except Exception as error:  # noqa: BLE001 - died twice, or its worker was lost
                cause = getattr(error, "cause", None) or error
                outcomes.append(failed(unit, f"{type(cause).__name__}: {cause}".splitlines()[0]))
        return outcomes
    finally:
        ray.shutdown()
