"""The course's one base error class, and the kinds the notebooks and tests tell apart."""


class CourseError(Exception):
    """Something the user can fix; its message is one sentence that says how (shown as one line by
    `setup.start`, the "Setup" of every notebook)."""


class SettingsError(CourseError, ValueError):
    """A parameter that cannot work (the parameters cell and "Setup" of every notebook, or `-p` on the
    command line)."""


class DataError(CourseError):
    """Data that is missing or unusable; the message names the source and the folder ("The data" of 01-05)."""


class CannotSplit(CourseError):
    """A model whose frozen part cannot be computed once (04, "Train only what trains")."""


class CheckFailed(CourseError, AssertionError):
    """A notebook's closing check found something missing or wrong (the "Checks" of 01-07)."""
