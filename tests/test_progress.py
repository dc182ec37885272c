"""Progress bars for the slow steps when someone watches, none when headless; what C++ libraries
print on file descriptor 2 hidden, and the descriptor restored."""

import os

import pytest

from helpers import progress


class FakeBar:
    """Stands in for tqdm: counts what it was asked to show."""

    made: list = []

    def __init__(self, items=None, total=None, desc="", **kwargs):
        self.items, self.total, self.desc, self.count = items, total, desc, 0
        FakeBar.made.append(self)

    def __iter__(self):
        for item in self.items:
            self.count += 1
            yield item


def test_a_bar_when_watched_and_none_when_headless(monkeypatch):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    FakeBar.made = []
    monkeypatch.delenv("COURSE_HEADLESS", raising=False)
    assert not progress.headless()
    assert list(progress.bar(range(5), 5, "five")) == [0, 1, 2, 3, 4]
    assert [(b.desc, b.total, b.count) for b in FakeBar.made] == [("five", 5, 5)]
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    assert progress.headless()
    assert list(progress.bar(range(3))) == [0, 1, 2] and len(FakeBar.made) == 1
    monkeypatch.setenv("COURSE_HEADLESS", "0")  # set to false: watched again
    assert not progress.headless()


def test_quiet_stderr_hides_file_descriptor_2_and_restores_it(capfd):
    os.write(2, b"before ")
    with progress.quiet_stderr():
        os.write(2, b"hidden ")
    os.write(2, b"after")
    assert capfd.readouterr().err == "before after"


def test_quiet_stderr_restores_file_descriptor_2_after_an_error(capfd):
    with pytest.raises(RuntimeError), progress.quiet_stderr():
        os.write(2, b"hidden ")
        raise RuntimeError("stop")
    os.write(2, b"shown")
    assert capfd.readouterr().err == "shown"
