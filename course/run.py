"""Run the notebooks headless with papermill into reports/<profile>/, as HTML too, and write an index
page with the summary table; a failing notebook does not stop the others.

    python -m course.run --profile smoke --jobs 2            # every notebook, two at once, then the report (make demo)
    python -m course.run --only 03 05 -p EPOCHS 2            # a subset, with parameters
    python -m course.run --profile full --workers 4          # 4 units at once on Ray (one GPU each)
    python -m course.run --profile full --shard 2/4          # share 2 of 4 (a Slurm array task): no report
    python -m course.run --profile full --report-only        # notebooks 07 and 06 and the index, after the shares

A unit is a notebook, or one configuration of notebook 04 when the rerun is split (--shard, --workers). Each
notebook receives only the -p parameters it defines; a name that none of them defines is refused.
"""

from __future__ import annotations

import argparse
import functools
import html
import json
import os
import socket
import string
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from helpers import records
from helpers import settings as course_settings
from helpers.errors import CourseError

READS_RECORDS = ("07_light_models_on_device", course_settings.SUMMARY_NOTEBOOK)  # in this order, after the rest
SPLIT_NOTEBOOK = "04_tf_flowers_unfreezing_strategies"  # split into one unit per configuration


@dataclass
class Outcome:
    """How one unit's run went."""
    notebook: str
    ok: bool
    seconds: float
    error: str = ""
    died: bool = False  # its kernel died (killed, out of memory), rather than a cell failing


@dataclass(frozen=True)
class Unit:
    """One notebook execution: a whole notebook, or one configuration of notebook 04."""
    notebook: str
    name: str  # the executed notebook's file stem
    parameters: dict


def parse_value(text: str):
    """A command-line value as papermill would read it: bool, None, int, float, or text."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def find_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The course's notebooks in order, optionally those whose names start with `only`."""
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.stem in course_settings.NOTEBOOKS)
    return [p for p in paths if not only or any(p.stem.startswith(prefix) for prefix in only)]


def parameters_of(notebook: Path) -> set[str]:
    """The names a notebook's parameters cell defines."""
    import papermill
    return set(papermill.inspect_notebook(str(notebook)))


def units(notebooks: list[str], profile: str, parameters: dict, split: bool) -> list[Unit]:
    """The notebooks that train, in order; with `split`, notebook 04 as one unit per configuration."""
    found = []
    for stem in (s for s in notebooks if s not in READS_RECORDS):
        defaults = course_settings.PROFILES[stem][profile]
        if split and stem == SPLIT_NOTEBOOK:
            models = course_settings.names("MODELS", parameters.get("MODELS") or defaults.models)
            strategies = course_settings.names("STRATEGIES", parameters.get("STRATEGIES") or defaults.strategies)
            found += [Unit(stem, f"{stem}__{m}-{s.replace(':', '-')}", {"MODELS": [m], "STRATEGIES": [s]})
                      for m in models for s in strategies]
        else:
            found.append(Unit(stem, stem, {}))
    return found


def render_html(notebook: Path) -> Path:
    """The executed notebook as a standalone HTML page beside it."""
    import nbformat
    from nbconvert import HTMLExporter
    node = nbformat.read(notebook, as_version=4)
    for cell in node.cells:
        merged: list = []  # consecutive pieces of one stream joined, as Jupyter shows them
        for output in cell.get("outputs", []):
            if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                    and merged[-1]["name"] == output["name"]):
                merged[-1]["text"] += output["text"]
            else:
                merged.append(output)
        for output in merged:
            if output.get("output_type") == "stream":
                output["text"] = settle(output["text"])
        if "outputs" in cell:
            cell["outputs"] = merged
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(node)
    return records.atomic_write(notebook.with_suffix(".html"), lambda tmp: tmp.write_text(body, encoding="utf-8"))


def settle(text: str) -> str:
    """Stream text as Jupyter shows it: a backspace erases the character before it, a carriage return
    the line so far (Keras's progress bars redraw themselves so; the report page shows their end)."""
    lines = []
    for line in text.split("\n"):
        shown: list[str] = []
        for char in line:
            if char == "\b":
                shown = shown[:-1]
            elif char == "\r":
                shown = []
            else:
                shown.append(char)
        lines.append("".join(shown))
    return "\n".join(lines)


def _kernel_manager_class():
    """Kernels on local sockets (no network port) where the OS has them, each in a folder of its own
    so that runners side by side never share socket files."""
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            if os.name == "posix":
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", str(Path(tempfile.mkdtemp(prefix="course-kernel-")) / "kernel"))
            super().__init__(**kwargs)

    return LocalKernelManager


def execute(notebook: Path, output: Path, parameters: dict, progress: bool | dict = True) -> Outcome:
    """Run one notebook with papermill; never raises for a failing notebook."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    started, error_text, died = time.perf_counter(), "", False
    partial = records.unique(output)  # this run's own file until it ends: two runs never write one report
    try:
        papermill.execute_notebook(str(notebook), str(partial), parameters=parameters, cwd=str(notebook.parent),
                                   progress_bar=progress, kernel_name="python3", request_save_on_cell_execute=True,
                                   kernel_manager_class=_kernel_manager_class())
    except papermill.PapermillExecutionError as error:
        error_text = f"{error.ename}: {error.evalue}".strip()
    except DeadKernelError as error:
        error_text, died = f"the kernel died ({error})", True
    except Exception as error:  # noqa: BLE001 - a dead kernel or a bad file must not stop the rest
        error_text = f"{type(error).__name__}: {error}"
    finally:
        if partial.exists():
            os.replace(partial, output)
    return Outcome(notebook.stem, not error_text, time.perf_counter() - started, error_text, died)


def run_unit(unit: Unit, notebook: Path, folder: Path, parameters: dict, progress: bool, label: str) -> Outcome:
    """Execute one unit into `folder` (its .ipynb and .html), with the parameters it defines."""
    output = folder / f"{unit.name}.ipynb"
    print(f"{label} {unit.name} ...", flush=True)
    defined = parameters_of(notebook)
    outcome = execute(notebook, output, {k: v for k, v in {**parameters, **unit.parameters}.items() if k in defined},
                      progress={"desc": unit.name[:2]} if progress else False)  # beside each other with --jobs
    outcome = replace(outcome, notebook=unit.name)
    if outcome.died:
        release_dead_claims(results_dir_of(parameters))
    if output.exists():
        try:
            render_html(output)
        except Exception as error:  # noqa: BLE001 - a rendering problem is not a run failure
            print(f"    (HTML not rendered: {error})")
    print(f"{label} {unit.name}: {'ok' if outcome.ok else 'FAILED - ' + outcome.error} ({outcome.seconds:.0f} s)",
          flush=True)
    return outcome


def release_dead_claims(results_dir: Path) -> int:
    """Remove the claims on configurations (each `.work/<configuration>/claim.json` a notebook's logbook
    takes) held by processes of this machine that are gone, such as a kernel that died: Ray's retry of
    the unit, on this node or another, then resumes at once instead of waiting for the claim to go stale."""
    from helpers.logbook import process_alive
    released = 0
    for claim in Path(results_dir).glob("**/.work/*/claim.json"):
        try:
            owner = json.loads(claim.read_text())
        except (OSError, ValueError):
            continue  # being written, or already gone
        if owner.get("host") == socket.gethostname() and not process_alive(owner.get("pid")):
            claim.unlink(missing_ok=True)
            released += 1
    return released


def results_dir_of(parameters: dict) -> Path:
    """Where the notebooks write their records, as they resolve it (the index page; dead claims)."""
    return Path(parameters.get("RESULTS_DIR") or os.environ.get("NB_RESULTS_DIR")
                or course_settings.project_root() / "results")


def run_planned(unit: Unit, paths: dict[str, Path], folder: Path, parameters: dict) -> Outcome:
    """`run_unit` as a Ray worker calls it (`course.workers`): no progress bar, a label of its own."""
    return run_unit(unit, paths[unit.notebook], folder, parameters, False, "[ray]")


def _summary_html(profile: str, results_dir: Path) -> str:
    """The readers' summary of the profile's records, read from the records themselves."""
    from helpers.articles import summary_for_readers, summary_table
    from helpers.records import load_records
    records = [r for r in load_records(results_dir)[0] if r.get("profile") == profile]
    if not records:
        return f"<p>No result records for the {profile} profile under {html.escape(str(results_dir))} yet.</p>"
    return summary_for_readers(summary_table(records)).to_html(
        index=False, float_format=lambda v: f"{v:,.4g}", na_rep="-", classes="summary", border=0)


NOTES = {"smoke": "Smoke profile: generated sample data and stand-in weights. These numbers show the pipeline works; "
                  "they are not reproductions of the articles, and no article's number stands beside them.",
         "laptop": "Laptop profile: the real data and ImageNet weights, with fewer images and epochs than the "
                   "articles; the articles' numbers are shown for orientation, not compared.",
         "full": "Full profile: the articles' settings on the real data."}


def write_index(folder: Path, profile: str, outcomes: list[Outcome], results_dir: Path) -> Path:
    """reports/<profile>/index.html: a link per executed notebook (this run's and earlier ones) and
    the summary table."""
    now = {o.notebook: o for o in outcomes}
    earlier = {p.stem for p in folder.glob("*.ipynb") if p.stem.split("__")[0] in course_settings.NOTEBOOKS}
    rows = []
    for stem in sorted(set(now) | earlier):
        outcome = now.get(stem)
        if outcome is None:
            ran = time.strftime("%Y-%m-%d %H:%M", time.localtime((folder / f"{stem}.ipynb").stat().st_mtime))
            status, css, seconds = f"from an earlier run ({ran})", "", ""
        else:
            status = "ok" if outcome.ok else f"failed: {html.escape(outcome.error)}"
            css, seconds = ("ok" if outcome.ok else "bad"), f"{outcome.seconds:.0f} s"
        rows.append(f"<tr><td><a href='{stem}.html'>{stem}</a></td><td class='{css}'>{status}</td><td>{seconds}</td>"
                    f"<td><a href='{stem}.ipynb'>ipynb</a></td></tr>")
    page = string.Template((Path(__file__).parent / "index_page.html").read_text()).substitute(
        profile=profile, note=NOTES[profile], rows="".join(rows), summary=_summary_html(profile, results_dir),
        where=html.escape(str(results_dir)), when=time.strftime("%Y-%m-%d %H:%M"))
    target = folder / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


def parse_share(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4), checked."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise SystemExit(f"--shard must be K/N with 1 <= K <= N, e.g. 2/4; got {text!r}.")
    return k, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.run", description="Run the course notebooks headless.")
    parser.add_argument("--profile", choices=course_settings.PROFILE_NAMES, default="smoke")
    parser.add_argument("--only", nargs="*", metavar="PREFIX", help="only the notebooks whose names start so (e.g. 03 05)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter, for every notebook that defines it")
    parser.add_argument("--shard", metavar="K/N", help="run share K of N of the units (a Slurm array task); no report")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="up to N notebooks at once on this "
                        "machine, longest first (make demo runs two on two CPU cores)")
    parser.add_argument("--workers", type=int, metavar="N", help="up to N units at once on Ray (one GPU each), "
                        "longest first, each retried once if its kernel dies; then the report")
    parser.add_argument("--address", help="with --workers: join this Ray cluster (e.g. HEAD:6379) instead of "
                        "starting Ray here; every node must see the checkout, results and reports")
    parser.add_argument("--report-only", action="store_true", help="run notebooks 07 and 06 and write the index page")
    parser.add_argument("--reports", help="reports folder (default: reports/)")
    parser.add_argument("--check-only", action="store_true", help="full and laptop: print what is needed, and stop")
    parser.add_argument("--no-check", action="store_true", help="full and laptop: run even when something is missing")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    if args.workers is not None and args.workers < 1 or args.address and not args.workers:
        parser.error("--workers needs a number of 1 or more (and --address needs --workers).")
    if args.jobs < 1 or args.jobs > 1 and args.workers:
        parser.error("--jobs needs a number of 1 or more, and runs without Ray (leave out --workers).")
    if args.workers and (args.shard or args.report_only):
        parser.error("--workers runs every unit and the report itself; leave out --shard and --report-only.")
    root = course_settings.project_root()
    notebooks = find_notebooks(root / "notebooks", args.only)
    if not notebooks:
        print(f"No notebooks match {args.only} in {root / 'notebooks'}.", file=sys.stderr)
        return 2
    parameters = {name: parse_value(value) for name, value in args.parameter}
    unknown = sorted(set(parameters) - set().union(*(parameters_of(p) for p in notebooks)))
    if unknown:
        print(f"No notebook run here has the parameter {', '.join(unknown)}; they define "
              f"{', '.join(sorted(set().union(*(parameters_of(p) for p in notebooks))))}.", file=sys.stderr)
        return 2
    parameters["PROFILE"] = args.profile
    if args.check_only and args.profile == "smoke":
        print("The smoke profile needs nothing to be in place: it generates its data and stand-in weights.")
        return 0
    reports = (Path(args.reports) if args.reports else root / "reports").resolve()
    folder = reports / args.profile
    reason = records.cannot_write(folder)
    if reason:
        print(f"The reports folder {folder} cannot be written ({reason}); choose another with --reports FOLDER.",
              file=sys.stderr)
        return 2
    os.environ["COURSE_HEADLESS"] = "1"  # the kernels show no progress bars

    if args.profile != "smoke" and not args.no_check and not args.report_only:
        from course import preflight
        data_dir = parameters.get("DATA_DIR")
        text, ready = preflight.report([p.stem for p in notebooks], Path(data_dir) if data_dir else None, args.profile)
        print(text + "\n", flush=True)
        if args.check_only or not ready:
            return 0 if ready else 1

    paths = {p.stem: p for p in notebooks}
    share, shares = parse_share(args.shard) if args.shard else (1, 1)
    try:
        plan = [] if args.report_only else units(list(paths), args.profile, parameters,
                                                 split=shares > 1 or bool(args.workers))
        if args.workers:
            from course import workers
            outcomes = workers.run_all(
                plan, functools.partial(run_planned, paths=paths, folder=folder, parameters=parameters),
                args.workers, args.address, lambda unit, error: Outcome(unit.name, False, 0.0, error))
    except CourseError as error:
        print(error, file=sys.stderr)
        return 2
    if not args.workers:
        mine = [u for i, u in enumerate(plan) if i % shares == share - 1]
        if args.jobs > 1:  # the longest start first, so that the last to end do not run alone
            from course.workers import longest_first
            mine = longest_first(mine)
        labels = [f"[{i}/{len(mine)}]" for i in range(1, len(mine) + 1)]
        with ThreadPoolExecutor(args.jobs) as pool:  # each thread waits on a kernel of its own
            outcomes = list(pool.map(lambda unit, label: run_unit(unit, paths[unit.notebook], folder, parameters,
                                                                   not args.no_progress, label), mine, labels))
    if shares == 1 or args.report_only:
        readers = [stem for stem in READS_RECORDS if stem in paths]
        for i, stem in enumerate(readers, 1):
            extra = {"REPORTS_DIR": str(reports)} if stem == course_settings.SUMMARY_NOTEBOOK else {}
            outcomes.append(run_unit(Unit(stem, stem, {}), paths[stem], folder, {**parameters, **extra},
                                     not args.no_progress, f"[report {i}/{len(readers)}]"))
        print(f"\nReport: {write_index(folder, args.profile, outcomes, results_dir_of(parameters))}")
    else:
        print(f"\nShare {share}/{shares} done; when every share has finished, write the report with "
              f"`python -m course.run --profile {args.profile} --report-only`.")
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        print(f"  FAILED {outcome.notebook}: {outcome.error}")
    print(f"{len(failed)} of {len(outcomes)} notebooks failed." if failed else f"All {len(outcomes)} notebooks ran.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
