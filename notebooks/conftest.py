"""nbval runs every notebook on the smoke profile, offline, writing into a temporary folder."""

import os
import tempfile

_scratch = tempfile.mkdtemp(prefix="nbval-")
os.environ["NB_PROFILE"] = "smoke"
os.environ["COURSE_OFFLINE"] = "1"
os.environ.setdefault("NB_RESULTS_DIR", os.path.join(_scratch, "results"))
os.environ.setdefault("NB_REPORTS_DIR", os.path.join(_scratch, "reports"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
