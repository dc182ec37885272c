"""`python -m benchmarks [name ...] [--quick]`: run the benchmarks in one process
(all five by default), each printing its table and writing reports/bench/<name>.json."""

from __future__ import annotations

import importlib
import sys
import time

from benchmarks import BENCHMARKS, common


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in args
    names = [a for a in args if not a.startswith("-")] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"Unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}.")
        return 2
    common.COMMAND = "python -m benchmarks" + (" " + " ".join(args) if args else "")
    started, load = time.perf_counter(), common.load_average()
    print(f"Benchmarks on {common.device().describe()}; load average {load}\n", flush=True)
    for name in names:
        importlib.import_module(f"benchmarks.{name}").run(quick=quick)
    print(f"All done in {time.perf_counter() - started:.0f} s (load average {load} -> "
          f"{common.load_average()}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
