"""The articles' reported numbers (`article_claims.csv`, a table a reader can open) and the
tables that set our records beside them: each notebook's "next to the article's" section, and
notebook 06's summary."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.records import EXTRA_FIELDS, RECORD_FIELDS
from helpers.settings import ARTICLE_STRATEGIES

# What each article reported, one row per configuration: the table a reader can open.
_CLAIMS_FILE = Path(__file__).with_name("article_claims.csv")
_CLAIM_TYPES = {"value": float, "epochs": int, "fine_tune_epochs": int, "image_size": int,
                "train_accuracy": float, "train_loss": float, "val_accuracy": float,
                "val_loss": float, "trainable_params": int, "inference_ms_per_image": float}


def _read_claims() -> list[dict[str, Any]]:
    with open(_CLAIMS_FILE, newline="", encoding="utf-8") as file:
        return [{key: _CLAIM_TYPES.get(key, str)(value) for key, value in row.items() if value}
                for row in csv.DictReader(file)]


ARTICLE_RESULTS: list[dict[str, Any]] = _read_claims()


def article_results():
    """The articles' reported numbers as a DataFrame."""
    return pd.DataFrame(ARTICLE_RESULTS)


def article_result(notebook: str, model: str, strategy: str) -> dict | None:
    """The article's row for one configuration, if it reported one."""
    for row in ARTICLE_RESULTS:
        if (row["notebook"], row["model"], row["strategy"]) == (notebook, model, strategy):
            return row
    return None


def records_table(records: list[dict]):
    """Records as a DataFrame, one row per record, contract fields first."""
    columns = list(RECORD_FIELDS) + [f for f in EXTRA_FIELDS if f != "history"]
    return pd.DataFrame([{k: r.get(k) for k in columns} for r in records], columns=columns)


def run_kind(profile: str, weights: str | None) -> str:
    """How to read a run: only the full profile with ImageNet weights reproduces an article."""
    if profile == "full" and weights == "imagenet":
        return "reproduction"
    if profile == "laptop" and weights == "imagenet":
        return "laptop run (real data, reduced settings)"
    if profile in ("full", "laptop"):
        label = weights if isinstance(weights, str) else "random"  # None may arrive as NaN
        return f"{profile} settings, {label} weights (not a reproduction)"
    return "smoke run (sample data, not a reproduction)"


SHOWS_ARTICLE = ("reproduction", "laptop run (real data, reduced settings)")
STRATEGY_ORDER = ("all", *ARTICLE_STRATEGIES, "from:100")


def summary_table(records: list[dict]):
    """Every record beside the number its article reported for the same configuration."""
    articles = article_results()[["notebook", "model", "strategy", "metric", "value", "epochs",
                                  "fine_tune_epochs", "article_ran"]]
    articles = articles.rename(columns={"value": "article_value", "epochs": "article_epochs",
                                        "fine_tune_epochs": "article_fine_tune_epochs",
                                        "metric": "article_metric"})
    merged = records_table(records).merge(articles, on=["notebook", "model", "strategy"],
                                          how="left")
    metrics = merged["article_metric"].fillna("test_accuracy")
    ours = [merged.at[i, metric] for i, metric in zip(merged.index, metrics)]
    merged["our_value"] = pd.to_numeric(pd.Series(ours, index=merged.index), errors="coerce")
    merged["kind"] = [run_kind(p, w) for p, w in zip(merged["profile"], merged["weights"])]
    # article numbers only beside real-data runs; a difference only for a reproduction
    shown = merged["kind"].isin(SHOWS_ARTICLE)
    for column in ("article_value", "article_epochs", "article_fine_tune_epochs", "article_ran"):
        merged[column] = merged[column].where(shown)
    article = pd.to_numeric(merged["article_value"], errors="coerce")
    merged["difference"] = (merged["our_value"] - article).where(merged["kind"] == "reproduction")
    order = merged["strategy"].map(lambda s: STRATEGY_ORDER.index(s)
                                   if s in STRATEGY_ORDER else len(STRATEGY_ORDER))
    merged = merged.assign(_order=order).sort_values(["notebook", "model", "_order", "variant"],
                                                     na_position="first")
    return merged.drop(columns="_order").reset_index(drop=True)


def _epochs_text(epochs, fine_tune_epochs) -> str:
    """'5', or with a fine-tuning phase '5 + 4'; '-' when unknown."""
    if pd.isna(epochs):
        return "-"
    if pd.isna(fine_tune_epochs) or int(fine_tune_epochs) == 0:
        return f"{int(epochs)}"
    return f"{int(epochs)} + {int(fine_tune_epochs)}"


METRIC_NAMES = {"test_accuracy": "test accuracy", "val_accuracy": "validation accuracy"}


def _for_readers(table, columns: dict[str, str]):
    """Some columns of a summary table, rounded and renamed for readers (epochs as '5 + 4')."""
    shown = table.copy()
    shown["article_metric"] = shown["article_metric"].map(lambda m: METRIC_NAMES.get(m, "-"))
    for epochs in ("epochs", "article_epochs"):
        fine_tune = shown[epochs.replace("epochs", "fine_tune_epochs")]
        shown[epochs] = [_epochs_text(e, f) for e, f in zip(shown[epochs], fine_tune)]
    shown = shown.round({"our_value": 4, "article_value": 4, "difference": 4,
                         "inference_ms_per_image": 2, "throughput_images_per_s": 1})
    return shown[list(columns)].rename(columns=columns)


COMPARISON_COLUMNS = {"title": "configuration", "kind": "profile", "our_value": "ours",
                      "article_value": "article", "difference": "difference",
                      "article_metric": "metric", "article_ran": "how the article ran it",
                      "article_epochs": "article epochs", "epochs": "epochs",
                      "trainable_params": "trainable params",
                      "inference_ms_per_image": "ms / image (batch 1)",
                      "throughput_images_per_s": "images / s (batched)"}


def comparison(records: list[dict], extra: dict[str, Callable[[dict], object]] | None = None):
    """Runs beside their article's numbers, for a notebook to show; `extra` adds columns, each
    computed from a record and put on that record's row (the table is sorted)."""
    shown = _for_readers(summary_table(records), COMPARISON_COLUMNS)
    # a smoke row carries no article figure; a laptop row shows it, but no difference
    shown["difference"] = [d if pd.notna(d) else "n/a (reduced settings)" if pd.notna(a) else "-"
                           for d, a in zip(shown["difference"], shown["article"])]
    for column in ("article", "article epochs", "how the article ran it"):
        shown[column] = shown[column].astype(object).where(shown[column].notna(), "-")
    if extra:
        by_title = {r["title"]: r for r in records}
        if len(by_title) != len(records):
            raise ValueError("comparison: two records share a title; give each configuration its own.")
        for name, column in extra.items():
            shown[name] = [column(by_title[title]) for title in shown["configuration"]]
    return shown


SUMMARY_COLUMNS = {"nb": "notebook", "model": "model", "strategy": "strategy", "kind": "profile",
                   "our_value": "ours", "article_value": "article", "difference": "difference",
                   "article_metric": "metric", "epochs": "epochs",
                   "trainable_params": "trainable params", "inference_ms_per_image": "ms / image",
                   "throughput_images_per_s": "images / s", "device": "device"}


def summary_for_readers(table):
    """The summary table with short, reader-facing columns, rounded (all columns stay in the CSV)."""
    shown = table.assign(nb=table["notebook"].str[:2],
                         kind=table["kind"].map(lambda k: k.split(" (")[0]))
    shown["strategy"] = [s if not isinstance(v, str) else f"{s} ({v})"
                         for s, v in zip(shown["strategy"], shown["variant"])]
    return _for_readers(shown, SUMMARY_COLUMNS)


ARTICLE_COLUMNS = {"train_accuracy": "train accuracy", "train_loss": "train loss",
                   "val_accuracy": "validation accuracy", "val_loss": "validation loss",
                   "test_accuracy": "test accuracy", "trainable_params": "trainable params",
                   "inference_ms_per_image": "ms / image"}


def side_by_side(records: list[dict]):
    """Ours and the article's value of each `ARTICLE_COLUMNS` figure, per model and strategy."""
    rows = []
    for record in records:
        article = article_result(record["notebook"], record["model"], record["strategy"]) or {}
        if run_kind(record["profile"], record["weights"]) not in SHOWS_ARTICLE:
            article = {}  # never an article figure beside a smoke run
        reported = {**article, article["metric"]: article["value"]} if article else {}
        row = {("model", ""): record["model"], ("strategy", ""): record["strategy"]}
        for column, label in ARTICLE_COLUMNS.items():
            row[(label, "ours")] = record.get(column)
            row[(label, "article")] = reported.get(column)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table.set_index([("model", ""), ("strategy", "")]).rename_axis(["model", "strategy"])


def to_markdown(table) -> str:
    """A DataFrame as a GitHub Markdown table (no extra dependency)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        if isinstance(value, float):
            return f"{value:,.4g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_summary(table, folder: Path) -> tuple[Path, Path]:
    """results.csv (every column) and results.md (readers' columns, a table per profile)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / "results.csv", folder / "results.md"
    tmp = folder / f".results.{os.getpid()}.csv"
    table.to_csv(tmp, index=False)
    os.replace(tmp, csv_path)
    readers = summary_for_readers(table)
    sections = [f"## The {profile} profile\n\n" + to_markdown(readers[table["profile"] == profile])
                for profile in ("full", "laptop", "smoke") if (table["profile"] == profile).any()]
    md_path.write_text("\n".join(sections) or "No records yet.\n")
    return csv_path, md_path
