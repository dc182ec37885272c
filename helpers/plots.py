"""Figures (plotnine and matplotlib), each returned for the notebook cell to show: the image grids
and learning curves of notebooks 01-05, and the comparisons of 02, 04 and 06."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotnine as p9

SPLIT_COLOURS = {"training": "#80797c", "validation": "#981220"}
PALETTE = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d96a3", "#2e4057", "#a05195"]
Rows = Sequence[Mapping]  # a history: one dict per epoch (epoch, phase, loss, val_loss, ...)


def history_frame(histories: Mapping[str, Rows]) -> pd.DataFrame:
    """Long format (run, epoch, phase, split, metric, value) of labelled histories (`training_curves`)."""
    records = [{"run": label, "epoch": row["epoch"], "phase": row.get("phase"),
                "split": "validation" if key.startswith("val_") else "training",
                "metric": key.removeprefix("val_"), "value": value}
               for label, rows in histories.items() for row in rows for key, value in row.items()
               if key not in ("epoch", "phase", "learning_rate")]
    return pd.DataFrame.from_records(records, columns=["run", "epoch", "phase", "split", "metric", "value"])


def fine_tune_start(rows: Rows) -> int | None:
    """The first epoch of a second phase (fine-tuning), or None (`training_curves`)."""
    first = rows[0].get("phase") if rows else None
    return next((row["epoch"] for row in rows if row.get("phase") != first), None)


def training_curves(histories: Rows | Mapping[str, Rows], title: str = "Training curves"):
    """Accuracy and loss per epoch of one or several runs, with where fine-tuning started: notebook 02,
    "Learning curves"; 04, "Learning curves of the best configuration per model"; 05, "Both models on one figure"."""
    labelled = histories if isinstance(histories, Mapping) else {"": histories}
    frame = history_frame(labelled)
    frame = frame[frame["metric"].isin(["accuracy", "loss"])]
    several = frame["run"].nunique() > 1
    if several:
        mapping, colours = p9.aes("epoch", "value", color="run", linetype="split"), PALETTE
    else:
        mapping, colours = p9.aes("epoch", "value", color="split"), SPLIT_COLOURS
    plot = (p9.ggplot(frame, mapping) + p9.geom_line(size=1) + p9.geom_point(size=1.2)
            + p9.facet_wrap("~metric", scales="free_y") + p9.scale_color_manual(values=colours, name="")
            + p9.labs(title=title, x="Epoch", y="") + p9.theme_minimal()
            + p9.theme(legend_position="bottom", figure_size=(10, 4.4)))
    bounds = pd.DataFrame({"epoch": [frame["epoch"].min()] * 2, "value": [0.0, 1.0], "metric": ["accuracy"] * 2})
    plot += p9.geom_blank(bounds, p9.aes("epoch", "value"), inherit_aes=False)
    if several:
        plot += p9.scale_linetype_manual(values={"training": "solid", "validation": "dashed"}, name="")
    starts = sorted({s - 0.5 for s in map(fine_tune_start, labelled.values()) if s})
    if starts:
        marks = pd.DataFrame([{"epoch": x, "metric": m} for x in starts for m in ("accuracy", "loss")])
        plot += p9.geom_vline(marks, p9.aes(xintercept="epoch"), linetype="dotted", color="#444444")
        text = marks[marks["metric"] == "accuracy"].assign(value=0.02, label=" fine-tuning starts")
        plot += p9.geom_text(text, p9.aes("epoch", "value", label="label"), inherit_aes=False,
                             size=8, ha="left", va="bottom", color="#444444")
    epochs = int(frame["epoch"].max()) if len(frame) else 1
    if epochs <= 30:
        plot += p9.scale_x_continuous(breaks=list(range(1, epochs + 1, max(1, epochs // 10))))
    return plot


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
    """Predictions over test images, green when right, red (with the truth) when wrong: notebook 01,
    "Step 5: evaluate and predict on the test set"; notebook 02, "The images they get wrong"."""
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
