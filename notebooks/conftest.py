"""nbval runs every notebook on the smoke profile, offline, into one scratch folder.

The folder is shared by the notebooks of one test run (across pytest-xdist workers, and across
the Makefile's separate runs of 01-05, then 07 and 06, through $NB_SCRATCH), so notebooks 06
and 07 read what 01-05 recorded in the same run."""

import os
import tempfile
from pathlib import Path

_run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
if os.environ.get("NB_SCRATCH"):
    _scratch = Path(os.environ["NB_SCRATCH"]).resolve()
elif _run:
    _scratch = Path(tempfile.gettempdir()) / f"nbval-{_run}"
else:
    _scratch = Path(tempfile.mkdtemp(prefix="nbval-"))
_scratch.mkdir(parents=True, exist_ok=True)
os.environ["NB_PROFILE"] = "smoke"
os.environ["COURSE_OFFLINE"] = "1"
os.environ["COURSE_HEADLESS"] = "1"
os.environ.setdefault("NB_RESULTS_DIR", str(_scratch / "results"))
os.environ.setdefault("NB_REPORTS_DIR", str(_scratch / "reports"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
