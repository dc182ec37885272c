"""Figures (plotnine and matplotlib), each returned for the notebook cell to show: the image and
prediction grids of notebooks 01-05, and the comparisons of 02, 04 and 06."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotnine as p9

PALETTE = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d96a3", "#2e4057", "#a05195"]


def image_grid(images: np.ndarray, titles: Sequence[str], columns: int = 5,
               colours: Sequence[str] | None = None, title: str = ""):
    """Images (raw 0-255) in a grid with a title over each: the data sections of notebooks 01-05; 01,
    "Step 2" and "Try it on your own images"; 05, "Augmentation, on training images only"."""
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.3 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            ax.imshow(np.clip(np.asarray(images[i]), 0, 255).astype("uint8"))
            ax.set_title(titles[i], fontsize=9, color=(colours[i] if colours else "black"))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def prediction_grid(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                    class_names: Sequence[str], columns: int = 5, title: str = ""):
    """Predictions over test images, green when right, red (with the truth) when wrong: 01, "Step 5:
    evaluate and predict on the test set"; 02, "The images they get wrong"; 03, "Evaluate and predict";
    04, "One configuration, the plain way"; 05, "Where the errors are"."""
    titles = [class_names[guess] if truth == guess else f"{class_names[guess]}\n(true: {class_names[truth]})"
              for truth, guess in zip(y_true, y_pred)]
    colours = ["#1a7f37" if truth == guess else "#cf222e" for truth, guess in zip(y_true, y_pred)]
    return image_grid(images, titles, columns, colours, title)


def pareto_front(table: pd.DataFrame, cost: str, benefit: str) -> pd.Series:
    """True for rows no other row beats on both cost (lower) and benefit (higher): notebook 06,
    "Accuracy against speed" (and `tradeoff`)."""
    values = table[[cost, benefit]].to_numpy(dtype=float)
    front = []
    for c, b in values:
        at_least_as_good = (values[:, 0] <= c) & (values[:, 1] >= b)
        dominated = np.any(at_least_as_good & ((values[:, 0] < c) | (values[:, 1] > b)))
        front.append(not dominated and np.isfinite(c) and np.isfinite(b))
    return pd.Series(front, index=table.index)


def tradeoff(table: pd.DataFrame, label: str = "title", colour: str | None = None,
             title: str = "", log_x: bool = False, facet: str | None = None):
    """Test accuracy against batch-1 latency with the Pareto front, labelled; with `facet`, one
    unlabelled panel and front per value of that column: notebook 02, "Our numbers beside the
    article's"; notebook 06, "Accuracy against speed"."""
    x, y = "inference_ms_per_image", "test_accuracy"
    frame = table.dropna(subset=[x, y]).copy()
    frame["pareto"] = False
    for _, part in (frame.groupby(facet) if facet else [(None, frame)]):
        frame.loc[part.index, "pareto"] = pareto_front(part, x, y)
    front = frame[frame["pareto"]].sort_values(x)
    plot = (p9.ggplot(frame, p9.aes(x, y))
            + p9.geom_step(data=front, color="#999999", linetype="dashed", direction="hv")
            + p9.geom_point(p9.aes(color=colour or label), size=3) + p9.scale_color_manual(values=PALETTE * 4, name="")
            + p9.labs(title=title, x="Batch-1 latency (ms per image)", y="Test accuracy", color="")
            + p9.theme_minimal() + p9.theme(legend_position="bottom", figure_size=(10, 5.5) if facet else (9, 5)))
    if facet:
        plot += p9.facet_wrap(f"~{facet}", scales="free")
    else:
        plot += p9.geom_text(p9.aes(label=label), data=front, size=7, nudge_y=0.012, va="bottom")
    scale = p9.scale_x_log10 if log_x else p9.scale_x_continuous
    return plot + scale(expand=(0.25, 0))


def accuracy_vs_params(table: pd.DataFrame, label: str | None = "strategy",
                       title: str = "Test accuracy against trainable parameters"):
    """One point per run, trainable parameters (log scale) against test accuracy: the "Accuracy
    against what trains" sections of notebooks 04 and 06."""
    frame = table.dropna(subset=["trainable_params", "test_accuracy"]).copy()
    frame["family"] = frame["strategy"].map(lambda s: str(s).split(":")[0])  # blocks:4 -> blocks
    plot = (p9.ggplot(frame, p9.aes("trainable_params", "test_accuracy", color="model", shape="family"))
            + p9.geom_point(size=3.5))
    if label:  # labels pushed apart where points crowd, with a thin line back to their point
        arrows = {"arrowstyle": "-", "color": "#999999", "lw": 0.5}
        plot += p9.geom_text(p9.aes(label=label), size=7, show_legend=False,
                             adjust_text={"expand": (1.3, 2.0), "force_text": (0.6, 1.2), "arrowprops": arrows})
    return (plot + p9.scale_x_log10() + p9.scale_color_manual(values=PALETTE, name="model")
            + p9.labs(title=title, x="Trainable parameters (log scale)", y="test accuracy", shape="strategy")
            + p9.theme_minimal() + p9.theme(figure_size=(10, 5)))
