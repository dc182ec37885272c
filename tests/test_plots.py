"""Plots: the accuracy-latency trade-off marks and labels its Pareto front; image grids title each image."""

import matplotlib
import numpy as np
import pandas as pd
from plotnine.geoms import geom_text

from helpers import plots

matplotlib.use("Agg")


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


def test_pareto_front_leaves_out_missing_values_and_keeps_ties():
    runs = pd.DataFrame({"cost": [1.0, 1.0, np.nan, 3.0], "benefit": [0.5, 0.5, 0.9, 0.4]})
    assert list(plots.pareto_front(runs, "cost", "benefit")) == [True, True, False, False]


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


def test_prediction_grid_titles_mistakes_with_the_truth_in_red():
    images = np.zeros((3, 8, 8, 3), np.uint8)
    fig = plots.prediction_grid(images, np.array([0, 1, 1]), np.array([0, 0, 1]), ["cat", "dog"], columns=2)
    axes = fig.axes
    assert len(axes) == 4  # two rows of two, the last one empty
    assert [ax.get_title() for ax in axes] == ["cat", "cat\n(true: dog)", "dog", ""]
    colours = [matplotlib.colors.to_hex(ax.title.get_color()) for ax in axes[:3]]
    assert colours == ["#1a7f37", "#cf222e", "#1a7f37"]
