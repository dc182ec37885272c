"""Plots: the accuracy-latency trade-off marks and labels its Pareto front."""

import pandas as pd
from plotnine.geoms import geom_text

from helpers import plots


def _runs():
    return pd.DataFrame({
        "title": ["fast", "slow but best", "dominated", "other task"],
        "nb": ["04", "04", "04", "05"],
        "inference_ms_per_image": [5.0, 20.0, 25.0, 8.0],
        "test_accuracy": [0.90, 0.95, 0.93, 0.99],
    })


def test_pareto_front_keeps_runs_no_other_beats_on_both():
    runs = _runs()[:3]
    assert list(plots.pareto_front(runs, "inference_ms_per_image", "test_accuracy")) == [True, True, False]


def test_single_panel_labels_the_front_only():
    plot = plots.tradeoff(_runs()[:3])
    texts = [layer for layer in plot.layers if isinstance(layer.geom, geom_text)]
    assert len(texts) == 1 and list(texts[0].geom.data["title"]) == ["fast", "slow but best"]


def test_panels_get_their_own_front_and_no_labels():
    plot = plots.tradeoff(_runs(), facet="nb")
    assert not [layer for layer in plot.layers if isinstance(layer.geom, geom_text)]
    step = plot.layers[0].geom.data  # the dashed front, per panel
    assert sorted(step["title"]) == ["fast", "other task", "slow but best"]
    plot.draw()  # renders
