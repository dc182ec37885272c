"""Progress bars for the slow steps when someone watches; nothing but one line per epoch when headless."""

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

    def update(self, n):
        self.count += n


def test_a_bar_when_watched_and_none_when_headless(monkeypatch):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    FakeBar.made = []
    monkeypatch.delenv("COURSE_HEADLESS", raising=False)
    assert list(progress.bar(range(5), 5, "five")) == [0, 1, 2, 3, 4]
    assert [(b.desc, b.total, b.count) for b in FakeBar.made] == [("five", 5, 5)]
    assert progress.keras_verbose() == 1  # a bar within each epoch
    monkeypatch.setenv("COURSE_HEADLESS", "1")
    assert list(progress.bar(range(3))) == [0, 1, 2] and len(FakeBar.made) == 1
    assert progress.keras_verbose() == 2  # one line per epoch
