"""Figures: training curves and comparisons with plotnine; confusion matrices and image
grids with matplotlib. Each function returns the figure (a notebook shows it as the
cell's value) and takes tidy data: a `History`, a DataFrame of records, arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from plotnine import (
    aes,
    element_text,
    facet_wrap,
    geom_blank,
    geom_col,
    geom_line,
    geom_point,
    geom_step,
    geom_text,
    geom_vline,
    ggplot,
    labs,
    scale_color_manual,
    scale_linetype_manual,
    scale_x_continuous,
    scale_x_log10,
    theme,
    theme_minimal,
)

SPLIT_COLOURS = {"training": "#80797c", "validation": "#981220"}
PALETTE = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d96a3", "#2e4057", "#a05195"]
Rows = Sequence[Mapping]  # a history: one dict per epoch (epoch, phase, loss, val_loss, ...)


def _size(width: float, height: float):
    return theme(figure_size=(width, height))


def history_frame(histories: Rows | Mapping[str, Rows]) -> pd.DataFrame:
    """Long format (run, epoch, phase, split, metric, value) of one or several labelled
    histories, as `experiment.Run.history` and a record's history rows hold them."""
    if isinstance(histories, Mapping):
        labelled = histories
    else:
        labelled = {"": histories}
    records = []
    for label, rows in labelled.items():
        for row in rows:
            for key, value in row.items():
                if key in ("epoch", "phase", "learning_rate"):
                    continue
                records.append({"run": label, "epoch": row["epoch"], "phase": row.get("phase"),
                                "split": "validation" if key.startswith("val_") else "training",
                                "metric": key.removeprefix("val_"), "value": value})
    return pd.DataFrame.from_records(records, columns=["run", "epoch", "phase", "split", "metric", "value"])


def fine_tune_start(rows: Rows) -> int | None:
    """The first epoch of a second phase (fine-tuning), or None."""
    if not rows:
        return None
    first = rows[0].get("phase")
    return next((row["epoch"] for row in rows if row.get("phase") != first), None)


def training_curves(histories: Rows | Mapping[str, Rows], title: str = "Training curves"):
    """Accuracy and loss per epoch, training and validation, for one or several runs; a dotted
    line, labelled, marks where fine-tuning started. The accuracy axis stops at 1."""
    labelled = histories if isinstance(histories, Mapping) else {"": histories}
    frame = history_frame(labelled)
    frame = frame[frame["metric"].isin(["accuracy", "loss"])]
    several = frame["run"].nunique() > 1
    if several:
        mapping = aes("epoch", "value", color="run", linetype="split")
        colours = scale_color_manual(values=PALETTE, name="")
    else:
        mapping = aes("epoch", "value", color="split")
        colours = scale_color_manual(values=SPLIT_COLOURS, name="")
    plot = (
        ggplot(frame, mapping)
        + geom_line(size=1)
        + geom_point(size=1.2)
        + facet_wrap("~metric", scales="free_y")
        + colours
        + labs(title=title, x="Epoch", y="")
        + theme_minimal()
        + theme(legend_position="bottom")
        + _size(10, 4.4)
    )
    # the accuracy panel spans [0, 1] and never passes 1
    bounds = pd.DataFrame({"epoch": [frame["epoch"].min()] * 2, "value": [0.0, 1.0],
                           "metric": ["accuracy"] * 2})
    plot += geom_blank(bounds, aes("epoch", "value"), inherit_aes=False)
    if several:
        plot += scale_linetype_manual(values={"training": "solid", "validation": "dashed"}, name="")
    starts = sorted({s - 0.5 for s in map(fine_tune_start, labelled.values()) if s})
    if starts:
        marks = pd.DataFrame([{"epoch": x, "metric": m} for x in starts for m in ("accuracy", "loss")])
        plot += geom_vline(marks, aes(xintercept="epoch"), linetype="dotted", color="#444444")
        labels = marks[marks["metric"] == "accuracy"].assign(value=0.02, label=" fine-tuning starts")
        plot += geom_text(labels, aes("epoch", "value", label="label"), inherit_aes=False, size=8,
                          ha="left", va="bottom", color="#444444")
    epochs = frame["epoch"].max() if len(frame) else 1
    if epochs <= 30:
        plot += scale_x_continuous(breaks=list(range(1, int(epochs) + 1, max(1, int(epochs) // 10))))
    return plot


def confusion_matrices(matrix: np.ndarray, class_names: Sequence[str], title: str = ""):
    """Raw counts and row-normalized rates side by side (scikit-learn's display)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    many = len(class_names) > 6
    fig, axes = plt.subplots(1, 2, figsize=(13 if many else 10, 5.5 if many else 4.2))
    for ax, values, fmt, name in ((axes[0], matrix, "d", "counts"),
                                  (axes[1], normalized, ".2f", "normalized by true class")):
        ConfusionMatrixDisplay(values, display_labels=list(class_names)).plot(
            ax=ax, cmap="Blues", colorbar=False, values_format=fmt,
            xticks_rotation=45 if many else "horizontal",
        )
        if many:  # slanted names end under their column instead of running into the next
            plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
        ax.set_title(f"{title} ({name})" if title else name.capitalize())
    fig.tight_layout()
    plt.close(fig)
    return fig


def image_grid(images: np.ndarray, titles: Sequence[str], columns: int = 5,
               colours: Sequence[str] | None = None, title: str = ""):
    """Images (raw 0-255) in a grid with a title over each."""
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
    """Predictions over test images: green when right, red (with the truth) when wrong."""
    titles, colours = [], []
    for truth, guess in zip(y_true, y_pred):
        right = truth == guess
        titles.append(class_names[guess] if right else f"{class_names[guess]}\n(true: {class_names[truth]})")
        colours.append("#1a7f37" if right else "#cf222e")
    return image_grid(images, titles, columns, colours, title)


def pareto_front(table: pd.DataFrame, cost: str, benefit: str) -> pd.Series:
    """True for rows no other row beats on both cost (lower) and benefit (higher)."""
    values = table[[cost, benefit]].to_numpy(dtype=float)
    front = []
    for c, b in values:
        dominated = np.any((values[:, 0] <= c) & (values[:, 1] >= b) & ((values[:, 0] < c) | (values[:, 1] > b)))
        front.append(not dominated and np.isfinite(c) and np.isfinite(b))
    return pd.Series(front, index=table.index)


def tradeoff(table: pd.DataFrame, x: str = "inference_ms_per_image", y: str = "test_accuracy",
             label: str = "title", colour: str | None = None, title: str = "",
             x_title: str = "Batch-1 latency (ms per image)", y_title: str = "Test accuracy",
             log_x: bool = False, facet: str | None = None):
    """A scatter of runs with the Pareto front as a dashed step line: the runs for which no
    other run is both faster and more accurate (labelled on a single panel). With `facet`, one
    panel and one front per value of that column (accuracies on different tasks do not
    compare), unlabelled: small panels cut labels off, so list the front in a table instead."""
    frame = table.dropna(subset=[x, y]).copy()
    frame["pareto"] = False
    for _, part in (frame.groupby(facet) if facet else [(None, frame)]):
        frame.loc[part.index, "pareto"] = pareto_front(part, x, y)
    front = frame[frame["pareto"]].sort_values(x)
    colour = colour or label
    plot = (
        ggplot(frame, aes(x, y))
        + geom_step(data=front, color="#999999", linetype="dashed", direction="hv")
        + geom_point(aes(color=colour), size=3)
        + scale_color_manual(values=PALETTE * 4, name="")
        + labs(title=title, x=x_title, y=y_title, color="")
        + theme_minimal()
        + theme(legend_position="bottom")
        + _size(10 if facet else 9, 5.5 if facet else 5)
    )
    if facet:
        plot += facet_wrap(f"~{facet}", scales="free")
    else:
        plot += geom_text(aes(label=label), data=front, size=7, nudge_y=0.012, va="bottom")
    # room at both ends, so labels of the first and last points are not cut off
    plot += scale_x_log10(expand=(0.25, 0)) if log_x else scale_x_continuous(expand=(0.25, 0))
    return plot


def bars(table: pd.DataFrame, x: str, y: str, fill: str | None = None, title: str = "",
         y_title: str = "", flip: bool = True):
    """Horizontal bars of one value per row (e.g. latency per configuration)."""
    from plotnine import coord_flip

    frame = table.copy()
    frame[x] = pd.Categorical(frame[x], categories=list(frame[x])[::-1] if flip else list(frame[x]))
    plot = (
        ggplot(frame, aes(x, y, fill=fill or x))
        + geom_col(show_legend=fill is not None)
        + labs(title=title, x="", y=y_title)
        + theme_minimal()
        + theme(axis_text_y=element_text(size=8))
        + _size(9, max(3, 0.32 * len(frame)))
    )
    from plotnine import scale_fill_manual

    plot += scale_fill_manual(values=PALETTE * 4, name="")
    return plot + coord_flip() if flip else plot


def ours_vs_article(table: pd.DataFrame, title: str = "Our accuracy against the article's"):
    """Each comparable run as a point: the article's number (x) against ours (y);
    points on the diagonal reproduce the article."""
    from plotnine import geom_abline

    frame = table.dropna(subset=["article_value", "our_value"]).copy()
    low = float(min(frame["article_value"].min(), frame["our_value"].min())) - 0.05 if len(frame) else 0
    plot = (
        ggplot(frame, aes("article_value", "our_value", color="notebook", shape="kind"))
        + geom_abline(slope=1, intercept=0, linetype="dashed", color="#999999")
        + geom_point(size=3)
        + scale_color_manual(values=PALETTE, name="")
        + labs(title=title, x="Article's reported accuracy", y="Our accuracy")
        + theme_minimal()
        + theme(legend_position="right")
        + _size(10, 5.5)
    )
    from plotnine import coord_cartesian

    return plot + coord_cartesian(xlim=(max(low, 0), 1), ylim=(max(low, 0), 1))


def strategy_family(strategy: str) -> str:
    """'blocks:4' -> 'blocks'; 'frozen' -> 'frozen'."""
    return str(strategy).split(":")[0]


def accuracy_vs_params(table: pd.DataFrame, y: str = "test_accuracy", label: str | None = "strategy",
                       title: str = "Test accuracy against trainable parameters"):
    """One point per run: trainable parameters (log scale) against accuracy, coloured by
    model, shaped by strategy family (frozen, last layers, last blocks)."""
    frame = table.dropna(subset=["trainable_params", y]).copy()
    frame["family"] = frame["strategy"].map(strategy_family)
    plot = ggplot(frame, aes("trainable_params", y, color="model", shape="family")) + geom_point(size=3.5)
    if label:
        # labels pushed apart where points crowd, with a thin line back to their point
        plot += geom_text(aes(label=label), size=7, show_legend=False,
                          adjust_text={"expand": (1.3, 2.0), "force_text": (0.6, 1.2),
                                       "arrowprops": {"arrowstyle": "-", "color": "#999999", "lw": 0.5}})
    return (
        plot
        + scale_x_log10()
        + scale_color_manual(values=PALETTE, name="model")
        + labs(title=title, x="Trainable parameters (log scale)", y=y.replace("_", " "),
               shape="strategy")
        + theme_minimal()
        + _size(10, 5)
    )
