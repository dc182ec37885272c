"""The runner (`python -m course.run`): every notebook runs even when one fails, each with only the
parameters it defines; a parameter no notebook defines is refused before anything runs; a share
(--shard) runs its units and writes no report; --report-only runs 07 and 06 and writes the index."""

import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course import run
from helpers import articles, records, settings

CATS_DOGS = "01_cats_vs_dogs_feature_extraction"
UPSAMPLING = "03_cifar10_resnet50_upsampling_finetune"
FLOWERS = "04_tf_flowers_unfreezing_strategies"
SUMMARY = "06_results_summary"
DEVICE = "07_light_models_on_device"


def _notebook(path, body, parameters='PROFILE: str = "full"\nGREETING: str = "hello"'):
    """A notebook whose parameters cell declares `parameters`, then runs `body`."""
    nb = new_notebook()
    params = new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _printed(path):
    executed = nbformat.read(path, 4)
    return [o["text"] for c in executed.cells for o in c.get("outputs", []) if o.get("name") == "stdout"]


@pytest.fixture
def course(tmp_path, monkeypatch):
    """An empty course checkout: add notebooks to its notebooks/ folder."""
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def executed(monkeypatch):
    """The runner with papermill replaced: each call is recorded as (executed file's stem,
    parameters given) and leaves an empty executed notebook behind; no HTML is rendered."""
    calls = []

    def execute(notebook, output, parameters, progress=True):
        calls.append((output.stem, dict(parameters)))
        nbformat.write(new_notebook(), output)
        return run.Outcome(notebook.stem, True, 1.0)

    monkeypatch.setattr(run, "execute", execute)
    monkeypatch.setattr(run, "render_html", lambda notebook: notebook.with_suffix(".html"))
    return calls


def test_a_failing_notebook_is_reported_and_the_others_still_run(course, capsys):
    notebooks = course / "notebooks"
    _notebook(notebooks / f"{FLOWERS}.ipynb",
              'print("GREETING" in globals())\nraise ValueError("this notebook is broken on purpose")',
              parameters='PROFILE: str = "full"')
    _notebook(notebooks / f"{CATS_DOGS}.ipynb", 'print(f"{GREETING} from {PROFILE}")')
    _notebook(notebooks / "99_not_part_of_the_course.ipynb", "print('never run')")

    code = run.main(["--profile", "smoke", "--no-progress", "-p", "GREETING", "hi"])

    assert code == 1
    out = capsys.readouterr().out
    assert f"[1/2] {CATS_DOGS}: ok" in out
    assert f"[2/2] {FLOWERS}: FAILED - ValueError: this notebook is broken on purpose" in out
    assert "1 of 2 notebooks failed" in out
    folder = course / "reports" / "smoke"
    assert _printed(folder / f"{CATS_DOGS}.ipynb") == ["hi from smoke\n"]  # the parameters were injected
    assert _printed(folder / f"{FLOWERS}.ipynb") == ["False\n"]  # GREETING only where it is defined
    for stem in (FLOWERS, CATS_DOGS):
        assert (folder / f"{stem}.html").stat().st_size > 1000
    index = (folder / "index.html").read_text()
    assert f"{CATS_DOGS}.html" in index
    assert "failed: ValueError: this notebook is broken on purpose" in index
    assert "99_not_part" not in index and not (folder / "99_not_part_of_the_course.ipynb").exists()
    assert not list(folder.glob(".*"))  # each run wrote its own file, then moved it into place


def test_a_misspelled_parameter_is_refused_before_any_notebook_runs(course, capsys):
    marker = course / "executed"
    for stem in (CATS_DOGS, FLOWERS):
        _notebook(course / "notebooks" / f"{stem}.ipynb", f"open({str(marker)!r}, 'w').write('ran')")

    assert run.main(["--profile", "smoke", "--no-progress", "-p", "GREETNG", "hi", "-p", "GREETING", "hi"]) == 2

    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(".") and "GREETNG" in lines[0]
    assert "GREETING, PROFILE" in lines[0]  # the names that do exist
    assert captured.out == ""
    assert not marker.exists() and not (course / "reports").exists()


def test_a_parameter_only_notebooks_outside_the_selection_define_is_refused(course, executed, capsys):
    _notebook(course / "notebooks" / f"{CATS_DOGS}.ipynb", "x = 1")
    _notebook(course / "notebooks" / f"{FLOWERS}.ipynb", "x = 1",
              parameters='PROFILE: str = "full"\nSTRATEGIES: list = ["frozen"]')
    assert run.main(["--only", "01", "--no-progress", "-p", "STRATEGIES", '["frozen"]']) == 2
    assert "STRATEGIES" in capsys.readouterr().err and executed == []


def test_each_notebook_receives_only_the_parameters_it_defines(course, executed, capsys):
    notebooks = course / "notebooks"
    _notebook(notebooks / f"{CATS_DOGS}.ipynb", "x = 1")
    _notebook(notebooks / f"{FLOWERS}.ipynb", "x = 1",
              parameters='PROFILE: str = "full"\nMODELS: list = ["resnet50"]\nSTRATEGIES: list = ["frozen"]')
    _notebook(notebooks / f"{SUMMARY}.ipynb", "x = 1", parameters='PROFILE: str = "full"\nREPORTS_DIR: str = ""')
    _notebook(notebooks / f"{DEVICE}.ipynb", "x = 1", parameters='PROFILE: str = "full"')
    reports = course / "elsewhere"

    code = run.main(["--no-progress", "--reports", str(reports), "-p", "GREETING", "hi",
                     "-p", "MODELS", '["mobilenet"]'])

    assert code == 0
    assert executed == [  # the notebooks that train in order, then 07 and 06 (which read their records)
        (CATS_DOGS, {"GREETING": "hi", "PROFILE": "smoke"}),
        (FLOWERS, {"MODELS": '["mobilenet"]', "PROFILE": "smoke"}),
        (DEVICE, {"PROFILE": "smoke"}),
        (SUMMARY, {"PROFILE": "smoke", "REPORTS_DIR": str(reports)}),
    ]
    assert (reports / "smoke" / "index.html").exists()
    assert "All 4 notebooks ran." in capsys.readouterr().out


def test_shares_run_their_units_without_a_report_and_report_only_writes_it(course, executed, capsys):
    notebooks = course / "notebooks"
    _notebook(notebooks / f"{CATS_DOGS}.ipynb", "x = 1")
    _notebook(notebooks / f"{FLOWERS}.ipynb", "x = 1",
              parameters='PROFILE: str = "full"\nMODELS: list = ["resnet50"]\nSTRATEGIES: list = ["frozen"]')
    _notebook(notebooks / f"{SUMMARY}.ipynb", "x = 1", parameters='PROFILE: str = "full"\nREPORTS_DIR: str = ""')
    _notebook(notebooks / f"{DEVICE}.ipynb", "x = 1", parameters='PROFILE: str = "full"')
    folder = course / "reports" / "smoke"
    common = ["--no-progress", "-p", "MODELS", '["mobilenet"]', "-p", "STRATEGIES", '["frozen", "layers:5", "blocks:2"]']
    one_unit = {"MODELS": ["mobilenet"], "PROFILE": "smoke"}

    assert run.main(["--shard", "1/2", *common]) == 0
    # units in plan order go to shares 1, 2, 1, 2; notebook 04 split per configuration
    assert executed == [(CATS_DOGS, {"PROFILE": "smoke"}),
                        (f"{FLOWERS}__mobilenet-layers-5", {**one_unit, "STRATEGIES": ["layers:5"]})]
    assert not (folder / "index.html").exists()
    assert "--report-only" in capsys.readouterr().out
    executed.clear()

    assert run.main(["--shard", "2/2", *common]) == 0
    assert executed == [(f"{FLOWERS}__mobilenet-frozen", {**one_unit, "STRATEGIES": ["frozen"]}),
                        (f"{FLOWERS}__mobilenet-blocks-2", {**one_unit, "STRATEGIES": ["blocks:2"]})]
    assert not (folder / "index.html").exists()
    executed.clear()

    assert run.main(["--report-only", "--no-progress"]) == 0
    assert [stem for stem, _ in executed] == [DEVICE, SUMMARY]  # nothing trains
    index = (folder / "index.html").read_text()
    for stem in (CATS_DOGS, f"{FLOWERS}__mobilenet-frozen", f"{FLOWERS}__mobilenet-layers-5",
                 f"{FLOWERS}__mobilenet-blocks-2", DEVICE, SUMMARY):
        assert f"href='{stem}.html'" in index, stem
    assert index.count("from an earlier run") == 4  # the shares' units; 07 and 06 ran now
    assert "Report: " in capsys.readouterr().out


def test_only_runs_a_subset_and_an_empty_match_is_an_error(course, executed, capsys):
    _notebook(course / "notebooks" / f"{CATS_DOGS}.ipynb", "x = 1")
    _notebook(course / "notebooks" / f"{FLOWERS}.ipynb", "x = 1")
    assert run.main(["--only", "02", "--no-progress"]) == 2
    assert "No notebooks match ['02']" in capsys.readouterr().err and executed == []
    assert run.main(["--only", "01", "--no-progress"]) == 0
    assert [stem for stem, _ in executed] == [CATS_DOGS]
    assert "All 1 notebooks ran." in capsys.readouterr().out


def test_index_shows_the_profiles_records_and_keeps_earlier_notebooks(tmp_path):
    smoke = settings.resolve(CATS_DOGS, profile="smoke", results_dir=tmp_path / "results")
    full = settings.resolve(CATS_DOGS, profile="full", results_dir=tmp_path / "results")
    for config, accuracy in ((smoke, 0.95), (full, 0.97)):
        record = records.new_record(config, "mobilenet_v2", "frozen", test_accuracy=accuracy)
        records.write_record(record, tmp_path / "results" / config.profile / f"{accuracy}.json")
    stale = records.new_record(smoke, "mobilenet_v2", "frozen", test_accuracy=0.4321)
    articles.write_summary(articles.summary_table([stale]), tmp_path / "reports")  # not used
    folder = tmp_path / "reports" / "smoke"
    folder.mkdir(parents=True)
    (folder / f"{FLOWERS}.ipynb").write_text("{}")  # executed by an earlier run
    (folder / "99_not_part_of_the_course.ipynb").write_text("{}")
    page = run.write_index(folder, "smoke", [run.Outcome(CATS_DOGS, True, 12.0)], tmp_path / "results").read_text()
    assert "0.95" in page and "0.97" not in page  # the records, this profile's only
    assert "0.4321" not in page
    assert "smoke run" in page and "not reproductions of the articles" in page
    assert f"href='{CATS_DOGS}.html'" in page and "12 s" in page
    assert f"href='{FLOWERS}.html'" in page and "from an earlier run" in page
    assert "99_not_part" not in page
    empty = run.write_index(folder, "full", [], tmp_path / "nothing").read_text()
    assert "No result records for the full profile" in empty


def test_command_line_values_are_read_like_papermill():
    assert [run.parse_value(v) for v in ("3", "0.5", "True", "False", "None", "resnet50")] == [
        3, 0.5, True, False, None, "resnet50"]
    assert run.parse_value('["a"]') == '["a"]'  # lists stay text for settings.names to read


def test_units_split_notebook_04_into_its_configurations_only_when_sharing():
    stems = [UPSAMPLING, FLOWERS, SUMMARY, DEVICE]
    whole = run.units(stems, "smoke", {}, split=False)
    assert [u.name for u in whole] == stems[:2] and all(u.parameters == {} for u in whole)
    shared = run.units(stems, "smoke", {"MODELS": '["mobilenet"]'}, split=True)
    assert [u.name for u in shared][:3] == [UPSAMPLING, f"{FLOWERS}__mobilenet-frozen",
                                            f"{FLOWERS}__mobilenet-layers-5"]
    # the smoke profile's three strategies (frozen, layers:5, blocks:2) for each model
    assert len(shared) == 1 + 3 and shared[2].parameters == {"MODELS": ["mobilenet"], "STRATEGIES": ["layers:5"]}
    assert {u.notebook for u in shared} == {UPSAMPLING, FLOWERS}
    assert len(run.units(stems, "smoke", {}, split=True)) == 1 + 2 * 3  # both models by default
    assert len(run.units(stems, "full", {}, split=True)) == 1 + 2 * 7  # the article's seven
    assert run.parse_share("2/4") == (2, 4)
    for text in ("5/4", "0/4", "two/4", "2"):
        with pytest.raises(SystemExit, match="--shard must be K/N"):
            run.parse_share(text)


@pytest.mark.notebook
def test_two_shares_at_once_train_each_configuration_once_and_report_only_sums_them_up(tmp_path):
    """Two processes share one results folder, as N machines or GPUs would; then the report."""
    common = ["--profile", "smoke", "--only", "01", "04", "06", "--no-progress", "--reports", str(tmp_path / "reports"),
              "-p", "RESULTS_DIR", str(tmp_path / "results"), "-p", "MODELS", '["mobilenet"]',
              "-p", "STRATEGIES", '["frozen", "layers:5", "blocks:2"]']
    env = {**os.environ, "COURSE_ROOT": str(settings.project_root())}
    shares = [subprocess.Popen([sys.executable, "-m", "course.run", "--shard", f"{k}/2", *common], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in (1, 2)]
    outputs = [share.communicate(timeout=1500)[0] for share in shares]
    assert [share.returncode for share in shares] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    folder = tmp_path / "reports" / "smoke"
    assert not (folder / "index.html").exists() and not any("Report: " in o for o in outputs)

    found, skipped = records.load_records(tmp_path / "results")
    configurations = sorted((r["notebook"][:2], r["model"], r["strategy"]) for r in found)
    assert not skipped and configurations == [("01", "mobilenet_v2", "frozen"), ("04", "mobilenet", "blocks:2"),
                                              ("04", "mobilenet", "frozen"), ("04", "mobilenet", "layers:5")]
    ran = {p.stem for p in folder.glob("*.ipynb")}
    assert ran == {CATS_DOGS, f"{FLOWERS}__mobilenet-frozen", f"{FLOWERS}__mobilenet-layers-5",
                   f"{FLOWERS}__mobilenet-blocks-2"}

    done = subprocess.run([sys.executable, "-m", "course.run", "--report-only", *common], env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    index = (folder / "index.html").read_text()
    assert all(f"{name}.html" in index for name in ran) and f"{SUMMARY}.html" in index
    assert len(pd.read_csv(tmp_path / "reports" / "results.csv")) == 4


def test_jobs_run_notebooks_at_once_longest_first_and_report_every_one(course, capsys):
    """Each of two notebooks waits for the other to have started: they finish only when run together."""
    for stem, other in ((CATS_DOGS, UPSAMPLING), (UPSAMPLING, CATS_DOGS)):
        _notebook(course / "notebooks" / f"{stem}.ipynb", (
            "import pathlib, time\n"
            f"pathlib.Path({str(course / stem)!r}).touch()\n"
            f"while not pathlib.Path({str(course / other)!r}).exists():\n"
            "    assert time.time() - START < 60, 'the other notebook never started'\n"
            "    time.sleep(0.1)\n"
            "print('met')"), parameters='PROFILE: str = "full"\nimport time\nSTART = time.time()')
    assert run.main(["--profile", "smoke", "--jobs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"[1/2] {UPSAMPLING} ..." in out and f"[2/2] {CATS_DOGS} ..." in out  # 03, the longer, first
    folder = course / "reports" / "smoke"
    assert _printed(folder / f"{CATS_DOGS}.ipynb") == _printed(folder / f"{UPSAMPLING}.ipynb") == ["met\n"]
    assert f"{CATS_DOGS}.html" in (folder / "index.html").read_text()


def test_jobs_are_refused_below_one_and_beside_ray(course, executed, capsys):
    _notebook(course / "notebooks" / f"{CATS_DOGS}.ipynb", "x = 1")
    for arguments in (["--jobs", "0"], ["--jobs", "2", "--workers", "2"]):
        with pytest.raises(SystemExit):
            run.main(arguments)
        assert "--jobs" in capsys.readouterr().err
    assert executed == []


def test_workers_without_ray_say_how_to_get_it(course, executed, capsys, monkeypatch):
    _notebook(course / "notebooks" / f"{CATS_DOGS}.ipynb", "x = 1")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert run.main(["--workers", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count(".") == err.count(".[") + 1 and "pip install -e .[cluster]" in err  # one sentence
    assert executed == []


def test_workers_refuse_to_be_combined_with_shares(course, executed, capsys):
    _notebook(course / "notebooks" / f"{CATS_DOGS}.ipynb", "x = 1")
    for arguments in (["--workers", "2", "--shard", "1/2"], ["--workers", "0"], ["--address", "head:6379"]):
        with pytest.raises(SystemExit):
            run.main(arguments)
        assert "--workers" in capsys.readouterr().err
    assert executed == []


def test_workers_start_the_longest_units_first():
    from course import workers
    stems = [CATS_DOGS, UPSAMPLING, FLOWERS, "05_cifar10_resnet50_vs_mobilenet"]
    plan = run.units(stems, "full", {"MODELS": '["mobilenet"]', "STRATEGIES": '["frozen", "all"]'}, split=True)
    hours = {CATS_DOGS: 1.0, UPSAMPLING: 5.0, FLOWERS: 6.0, "05_cifar10_resnet50_vs_mobilenet": 2.5}
    ordered = workers.longest_first(plan, hours.get)
    # 04's six hours are shared by its two configurations: three hours each, after 03's five
    assert [u.name for u in ordered] == [UPSAMPLING, f"{FLOWERS}__mobilenet-frozen", f"{FLOWERS}__mobilenet-all",
                                         "05_cifar10_resnet50_vs_mobilenet", CATS_DOGS]


@pytest.mark.notebook
def test_two_ray_workers_retry_a_killed_kernel_and_record_each_configuration_once(tmp_path):
    """Notebook 04 split into configurations on two local Ray workers; one kernel is killed after its
    first backed-up epoch: Ray runs that unit again, it resumes, and every configuration is recorded once."""
    results, strategies = tmp_path / "results", ["frozen", "layers:5", "blocks:2"]
    command = [sys.executable, "-m", "course.run", "--profile", "smoke", "--only", "04", "--workers", "2",
               "--no-progress", "--reports", str(tmp_path / "reports"), "-p", "RESULTS_DIR", str(results),
               "-p", "MODELS", '["mobilenet"]', "-p", "STRATEGIES", str(strategies)]
    runner = subprocess.Popen(command, env={**os.environ, "COURSE_ROOT": str(settings.project_root())},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    while runner.poll() is None and killed is None:  # the first configuration with a backed-up epoch
        for state in results.glob(f"{FLOWERS}/.work/*/until-*/state.json"):
            claim = json.loads((state.parent.parent / "claim.json").read_text() or "{}")
            os.kill(claim["pid"], getattr(signal, "SIGKILL", signal.SIGTERM))
            killed = state.parent.parent.name
            break
        time.sleep(0.05)
    output = runner.communicate(timeout=1500)[0]
    assert runner.returncode == 0, output[-4000:]
    assert killed is not None, "no configuration was caught training: " + output[-2000:]
    assert "the kernel died" in output and "Ray runs it once more" in output
    found, skipped = records.load_records(results)
    assert not skipped and sorted(r["strategy"] for r in found) == sorted(strategies)  # each exactly once
    for record in found:  # every epoch of both phases logged once, the killed configuration's included
        epochs = [row["epoch"] for row in record["history"]["rows"]]
        expected = 5 if record["strategy"] == "frozen" else 5 + 1  # smoke: 5 epochs, then 1 unfrozen
        assert epochs == list(range(1, expected + 1)), (record["strategy"], epochs)
    index = (tmp_path / "reports" / "smoke" / "index.html").read_text()
    assert all(f"{FLOWERS}__mobilenet-{s.replace(':', '-')}.html" in index for s in strategies)


def test_a_reports_folder_that_cannot_be_written_is_refused_before_any_notebook_runs(course, executed, capsys,
                                                                                   tmp_path):
    _notebook(course / "notebooks" / f"{CATS_DOGS}.ipynb", "x = 1")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert run.main(["--reports", str(blocker / "reports"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count(". ") == 0 and err.endswith("--reports FOLDER.") and str(blocker) in err  # one sentence
    assert executed == []


def test_progress_bars_in_a_report_page_show_their_last_state():
    bar = "1/3 [=>....] - loss: 0.9" + "\b" * 24 + "\r3/3 [=====] - loss: 0.5\nEpoch 2/2\n1/3\r3/3 done"
    assert run.settle(bar) == "3/3 [=====] - loss: 0.5\nEpoch 2/2\n3/3 done"
    assert run.settle("abc\b\bX") == "aX"  # a backspace erases, as JupyterLab draws it


def test_a_report_page_has_no_backspace_characters(tmp_path):
    path = tmp_path / "page.ipynb"
    nb = new_notebook()
    cell = new_code_cell("fit()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Epoch 1/1\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="\r1/2 [==>]"),  # flushed apart,
                    nbformat.v4.new_output("stream", name="stdout", text="\b" * 9 + "\r2/2 [====] ok\n")]  # as Keras does
    nb.cells = [cell]
    nbformat.write(nb, path)
    page = run.render_html(path).read_text()
    assert "\x08" not in page and "Epoch 1/1" in page and "2/2 [====] ok" in page and "1/2" not in page
    assert "\\b" in path.read_text()  # the .ipynb keeps the stream as it was written (Jupyter draws it)


def test_claims_of_dead_processes_on_this_machine_are_released_and_others_kept(tmp_path):
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    claims = {}
    for name, owner in {"dead": {"host": socket.gethostname(), "pid": gone.pid},
                        "alive": {"host": socket.gethostname(), "pid": os.getpid()},
                        "elsewhere": {"host": "another-node", "pid": gone.pid}}.items():
        claims[name] = tmp_path / FLOWERS / ".work" / name / "claim.json"
        claims[name].parent.mkdir(parents=True)
        claims[name].write_text(json.dumps(owner))
    assert run.release_dead_claims(tmp_path) == 1
    assert [n for n, c in claims.items() if c.exists()] == ["alive", "elsewhere"]
