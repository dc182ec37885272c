"""The course's one base error class, and the kinds the notebooks and tests tell apart."""


class CourseError(Exception):
    """Something the user can fix; its message is one sentence that says how."""


class SettingsError(CourseError, ValueError):
    """A parameter that cannot work (the parameters cell, or `-p` on the command line)."""


class DataError(CourseError):
    """Data that is missing or unusable; the message names the source and the folder."""


class CannotSplit(CourseError):
    """A model whose frozen part cannot be computed once (notebook 04)."""


class TrainingDiverged(CourseError):
    """The loss became NaN or infinite."""


class CheckFailed(CourseError, AssertionError):
    """A notebook's closing check found something missing or wrong."""
