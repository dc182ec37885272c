"""nbval runs every notebook on the smoke profile, offline, into a fresh scratch folder.

The folder is shared by the notebooks of one test session (also across pytest-xdist
workers), so notebook 06 summarizes what 01-05 recorded in the same run."""

import os
import tempfile
from pathlib import Path

_run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
if _run:
    _scratch = Path(tempfile.gettempdir()) / f"nbval-{_run}"
    _scratch.mkdir(exist_ok=True)
else:
    _scratch = Path(tempfile.mkdtemp(prefix="nbval-"))
os.environ["NB_PROFILE"] = "smoke"
os.environ["COURSE_OFFLINE"] = "1"
os.environ.setdefault("NB_RESULTS_DIR", str(_scratch / "results"))
os.environ.setdefault("NB_REPORTS_DIR", str(_scratch / "reports"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
