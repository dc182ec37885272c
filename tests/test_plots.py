"""Plots: the accuracy-latency trade-off marks and labels its Pareto front; learning curves read
histories in long format and mark where fine-tuning starts; image grids title each image."""

import matplotlib
import numpy as np
import pandas as pd
from plotnine.geoms import geom_text, geom_vline

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


HISTORY = [
    {"epoch": 1, "phase": "frozen", "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4,
     "learning_rate": 1e-3},
    {"epoch": 2, "phase": "frozen", "loss": 0.8, "accuracy": 0.6, "val_loss": 0.9, "val_accuracy": 0.5,
     "learning_rate": 1e-3},
    {"epoch": 3, "phase": "fine-tune", "loss": 0.5, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.7,
     "learning_rate": 1e-5},
]


def test_history_frame_is_long_with_a_split_per_metric():
    frame = plots.history_frame({"resnet50": HISTORY})
    assert list(frame.columns) == ["run", "epoch", "phase", "split", "metric", "value"]
    assert len(frame) == 3 * 4  # learning_rate is no metric
    row = frame[(frame["epoch"] == 3) & (frame["metric"] == "accuracy") & (frame["split"] == "validation")]
    assert row["value"].tolist() == [0.7] and row["phase"].tolist() == ["fine-tune"]
    assert set(frame["metric"]) == {"loss", "accuracy"} and set(frame["run"]) == {"resnet50"}
    assert plots.history_frame({}).empty


def test_fine_tune_start_is_the_first_epoch_of_a_second_phase():
    assert plots.fine_tune_start(HISTORY) == 3
    assert plots.fine_tune_start(HISTORY[:2]) is None
    assert plots.fine_tune_start([]) is None


def test_training_curves_mark_where_fine_tuning_starts():
    plot = plots.training_curves(HISTORY)
    marks = [layer for layer in plot.layers if isinstance(layer.geom, geom_vline)]
    assert len(marks) == 1 and set(marks[0].geom.data["epoch"]) == {2.5}
    plot.draw()
    frozen = plots.training_curves({"a": HISTORY[:2], "b": HISTORY[:2]})
    assert not [layer for layer in frozen.layers if isinstance(layer.geom, geom_vline)]
    frozen.draw()


def test_prediction_grid_titles_mistakes_with_the_truth_in_red():
    images = np.zeros((3, 8, 8, 3), np.uint8)
    fig = plots.prediction_grid(images, np.array([0, 1, 1]), np.array([0, 0, 1]), ["cat", "dog"], columns=2)
    axes = fig.axes
    assert len(axes) == 4  # two rows of two, the last one empty
    assert [ax.get_title() for ax in axes] == ["cat", "cat\n(true: dog)", "dog", ""]
    colours = [matplotlib.colors.to_hex(ax.title.get_color()) for ax in axes[:3]]
    assert colours == ["#1a7f37", "#cf222e", "#1a7f37"]
