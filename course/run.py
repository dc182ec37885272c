"""Run the notebooks headless with papermill into reports/<profile>/, as HTML too, and write
an index page with the summary table; a failing notebook does not stop the others.

    python -m helpers.run --profile smoke                  # every notebook (make demo)
    python -m helpers.run --only 03 05 -p EPOCHS 2         # a subset, with parameters
    python -m helpers.run --profile full --shard 2/4       # share 2 of a rerun split in 4

With --shard K/N, N machines sharing the results and reports folders train each unit (a
notebook, or one configuration of notebook 03) once; the share finishing last writes the report.
"""

from __future__ import annotations

import argparse
import html
import os
import string
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from helpers import config


@dataclass
class Outcome:
    """How one notebook's run went."""
    notebook: str
    ok: bool
    seconds: float
    error: str = ""


def parse_value(text: str):
    """A command-line value as papermill would read it: bool, None, int, float, or text."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The course's notebooks in order, optionally those whose names start with `only`."""
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.stem in config.NOTEBOOKS)
    if only:
        paths = [p for p in paths if any(p.stem.startswith(prefix) for prefix in only)]
    return paths


def render_html(notebook: Path) -> Path:
    """The executed notebook as a standalone HTML page beside it."""
    import nbformat
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def _kernel_manager_class():
    """Kernels on local sockets (no network port) where the OS has them, each in its own folder
    so runners side by side never share socket files."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager
    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            if os.name == "posix":
                folder = Path(tempfile.mkdtemp(prefix="course-kernel-"))
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", str(folder / "kernel"))
            super().__init__(**kwargs)

    return LocalKernelManager


def execute(notebook: Path, output: Path, parameters: dict, progress: bool = True) -> Outcome:
    """Run one notebook with papermill; never raises for a failing notebook."""
    import papermill
    started, error_text = time.perf_counter(), ""
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters,
                                   cwd=str(notebook.parent), progress_bar=progress,
                                   kernel_name="python3", request_save_on_cell_execute=True,
                                   kernel_manager_class=_kernel_manager_class())
    except papermill.PapermillExecutionError as error:
        error_text = f"{error.ename}: {error.evalue}".strip()
    except Exception as error:  # noqa: BLE001 - a dead kernel or a bad file must not stop the rest
        error_text = f"{type(error).__name__}: {error}"
    return Outcome(notebook.stem, not error_text, time.perf_counter() - started, error_text)


def _notebook_rows(folder: Path, outcomes: list[Outcome]) -> list[str]:
    """One row per notebook run now or executed into `folder` by an earlier run."""
    now = {o.notebook: o for o in outcomes}
    earlier = {p.stem for p in folder.glob("*.ipynb") if p.stem.split("__")[0] in config.NOTEBOOKS}
    rows = []
    for stem in sorted(set(now) | earlier):
        outcome = now.get(stem)
        if outcome is None:
            modified = time.localtime((folder / f"{stem}.ipynb").stat().st_mtime)
            ran = time.strftime("%Y-%m-%d %H:%M", modified)
            status, css, seconds = f"from an earlier run ({ran})", "", ""
        else:
            status = "ok" if outcome.ok else f"failed: {html.escape(outcome.error)}"
            css, seconds = ("ok" if outcome.ok else "bad"), f"{outcome.seconds:.0f} s"
        rows.append(f"<tr><td><a href='{stem}.html'>{stem}</a></td><td class='{css}'>{status}</td>"
                    f"<td>{seconds}</td><td><a href='{stem}.ipynb'>ipynb</a></td></tr>")
    return rows


def _summary_html(profile: str, results_dir: Path) -> str:
    """The readers' summary of the profile's records, read from the records themselves."""
    from helpers.results import load_records, summary_for_readers, summary_table
    records, _ = load_records(results_dir)
    records = [r for r in records if r.get("profile") == profile]
    where = html.escape(str(results_dir))
    if not records:
        return f"<p>No result records for the {profile} profile under {where} yet.</p>"
    return summary_for_readers(summary_table(records)).to_html(
        index=False, float_format=lambda v: f"{v:,.4g}", na_rep="-", classes="summary", border=0)


def write_index(folder: Path, profile: str, outcomes: list[Outcome], results_dir: Path) -> Path:
    """reports/<profile>/index.html: a link per executed notebook and the summary table."""
    note = {
        "smoke": "Smoke profile: generated sample data and stand-in weights. These numbers show the "
                 "pipeline works; they are not reproductions of the articles, and no article's number "
                 "stands beside them.",
        "laptop": "Laptop profile: the real data and ImageNet weights, with fewer images and epochs "
                  "than the articles; the articles' numbers are shown for orientation, not compared.",
        "full": "Full profile: the articles' settings on the real data.",
    }[profile]
    page = string.Template((Path(__file__).parent / "index_page.html").read_text())
    page = page.substitute(profile=profile, note=note, rows="".join(_notebook_rows(folder, outcomes)),
                           summary=_summary_html(profile, results_dir), where=html.escape(str(results_dir)),
                           when=time.strftime("%Y-%m-%d %H:%M"))
    target = folder / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


@dataclass(frozen=True)
class Unit:
    """One notebook execution of a rerun: a whole notebook, or one configuration of notebook 03."""
    notebook: str
    name: str  # the executed notebook's file stem
    parameters: dict


def units(notebooks: list[str], profile: str, parameters: dict, split: bool) -> list[Unit]:
    """The notebooks that train, in order; with `split`, notebook 03 as one unit per configuration."""
    found = []
    for stem in notebooks:
        if stem in config.READS_RECORDS:
            continue
        defaults = config.PROFILES[stem][profile]
        if split and stem.startswith("03"):
            models = config.names("MODELS", parameters.get("MODELS") or defaults.models)
            strategies = config.names("STRATEGIES", parameters.get("STRATEGIES") or defaults.strategies)
            found += [Unit(stem, f"{stem}__{m}-{s.replace(':', '-')}", {"MODELS": [m], "STRATEGIES": [s]})
                      for m in models for s in strategies]
        else:
            found.append(Unit(stem, stem, {}))
    return found


def parse_share(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4), checked."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise SystemExit(f"--shard must be K/N with 1 <= K <= N, e.g. 2/4; got {text!r}.")
    return k, n


def _run_unit(unit: Unit, notebook: Path, folder: Path, parameters: dict, progress: bool,
              label: str) -> Outcome:
    output = folder / f"{unit.name}.ipynb"
    print(f"{label} {unit.name} ...", flush=True)
    outcome = execute(notebook, output, {**parameters, **unit.parameters}, progress=progress)
    outcome = replace(outcome, notebook=unit.name)
    if output.exists():
        try:
            render_html(output)
        except Exception as error:  # noqa: BLE001 - a rendering problem is not a run failure
            print(f"    (HTML not rendered: {error})")
    mark = "ok" if outcome.ok else f"FAILED - {outcome.error}"
    print(f"{label} {unit.name}: {mark} ({outcome.seconds:.0f} s)", flush=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the course notebooks headless with papermill.")
    parser.add_argument("--profile", choices=config.PROFILE_NAMES, default="smoke")
    parser.add_argument("--only", nargs="*", metavar="PREFIX",
                        help="run only the notebooks whose names start with these (e.g. 03 05)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a parameter for every notebook")
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="run share K of N of the rerun (notebook 03 split into its configurations); "
                             "the share that finishes last writes the report")
    parser.add_argument("--reports", default=None, help="reports folder (default: reports/)")
    parser.add_argument("--check-only", action="store_true",
                        help="full and laptop profiles: print what is needed and stop")
    parser.add_argument("--no-check", action="store_true",
                        help="full and laptop profiles: run even when something looks missing")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    root = config.project_root()
    notebooks = find_notebooks(root / "notebooks", args.only)
    if not notebooks:
        print(f"No notebooks match {args.only} in {root / 'notebooks'}.", file=sys.stderr)
        return 2
    share, shares = parse_share(args.shard) if args.shard else (1, 1)
    parameters = {name: parse_value(value) for name, value in args.parameter}
    parameters["PROFILE"] = args.profile
    reports = Path(args.reports) if args.reports else root / "reports"
    folder = reports / args.profile
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["COURSE_HEADLESS"] = "1"  # the kernels print one line per epoch, no bars

    if args.profile != "smoke" and not args.no_check:
        from helpers import preflight

        data_dir = parameters.get("DATA_DIR")
        text, ready = preflight.report([p.stem for p in notebooks], Path(data_dir) if data_dir else None,
                                       profile=args.profile)
        print(text, flush=True)
        if args.check_only or not ready:
            return 0 if ready else 1
        print()

    paths = {p.stem: p for p in notebooks}
    plan = units(list(paths), args.profile, parameters, split=shares > 1)
    mine = [u for i, u in enumerate(plan) if i % shares == share - 1]
    done = folder / "shares"
    outcomes = []
    for index, unit in enumerate(mine, 1):
        marker = done / f"{unit.name}.done"
        if shares > 1 and marker.exists():
            print(f"[{index}/{len(mine)}] {unit.name}: done by an earlier run of this share, skipped")
            continue
        outcome = _run_unit(unit, paths[unit.notebook], folder, parameters, not args.no_progress,
                            f"[{index}/{len(mine)}]")
        outcomes.append(outcome)
        if outcome.ok and shares > 1:
            done.mkdir(exist_ok=True)
            marker.write_text(f"share {share}/{shares}\n")

    complete = shares == 1 or all((done / f"{u.name}.done").exists() for u in plan)
    results_dir = Path(parameters.get("RESULTS_DIR") or os.environ.get("NB_RESULTS_DIR") or root / "results")
    readers = [stem for stem in config.READS_RECORDS[::-1] if stem in paths]  # 07 writes records, 06 sums up
    if complete:
        from filelock import FileLock

        with FileLock(str(folder / "report.lock")):  # shares that finish together write it once each, in turn
            for index, stem in enumerate(readers, 1):
                params = {**parameters, "REPORTS_DIR": str(reports)} if stem == config.SUMMARY_NOTEBOOK else parameters
                outcomes.append(_run_unit(Unit(stem, stem, {}), paths[stem], folder, params,
                                          not args.no_progress, f"[report {index}/{len(readers)}]"))
            index_page = write_index(folder, args.profile, outcomes, results_dir)
        print(f"\nReport: {index_page}")
    else:
        left = [u.name for u in plan if not (done / f"{u.name}.done").exists()]
        print(f"\nShare {share}/{shares} done; {len(left)} unit(s) not finished yet (running in "
              "other shares, or failed: rerun their share); the share that finishes last writes "
              "the report.")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} notebooks failed:")
        for outcome in failed:
            print(f"  {outcome.notebook}: {outcome.error}")
        return 1
    print(f"All {len(outcomes)} notebooks ran.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
