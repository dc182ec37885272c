"""`python -m benchmarks [name ...] [--quick]` (`make bench`): the benchmarks in one process (all four
by default), each within its time budget, all within TARGET seconds; `--quick` checks that they run
(tiny sizes, figures not meaningful)."""

from __future__ import annotations

import importlib
import os
import sys
import time

from benchmarks import BENCHMARKS, calibration, common

TARGET = 600  # make bench on two CPU cores: ten minutes


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__)
        return 0
    names = [a for a in args if not a.startswith("-")] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"Unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}.")
        return 2
    common.QUICK = "--quick" in args
    common.COMMAND = " ".join(["python -m benchmarks", *args])
    started, load = time.perf_counter(), common.load_average()
    common.start()
    machine = calibration.measure()
    print(f"make bench on {os.cpu_count()} CPU cores, load average {load}; float32 matmul "
          f"{machine['calibration_gflops']:g} GFLOP/s (median, {machine['calibration_library']}, the "
          "calibration of benchmarks.laptop)" + ("  [QUICK: figures not meaningful]" if common.QUICK else "")
          + "\n", flush=True)
    for name in names:
        importlib.import_module(f"benchmarks.{name}").run(quick=common.QUICK)
    seconds = time.perf_counter() - started
    print(f"All done in {seconds:.0f} s, {'within' if seconds <= TARGET else 'OVER'} the {TARGET} s target "
          f"(load average {load} -> {common.load_average()}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
