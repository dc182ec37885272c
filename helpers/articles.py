"""The articles' reported numbers (`article_claims.csv`, a table a reader can open) and the tables that set
our records beside them: the "next to the article's" sections of notebooks 01-05, and notebook 06's summary."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.records import EXTRA_FIELDS, RECORD_FIELDS, atomic_write
from helpers.settings import ARTICLE_STRATEGIES

_TYPES = {"value": float, "epochs": int, "fine_tune_epochs": int, "image_size": int, "train_accuracy": float,
          "train_loss": float, "val_accuracy": float, "val_loss": float, "trainable_params": int,
          "inference_ms_per_image": float}
with open(Path(__file__).with_name("article_claims.csv"), newline="", encoding="utf-8") as _file:
    ARTICLE_RESULTS: list[dict[str, Any]] = [{k: _TYPES.get(k, str)(v) for k, v in row.items() if v}
                                             for row in csv.DictReader(_file)]
SHOWS_ARTICLE = ("reproduction", "laptop run (real data, reduced settings)")
STRATEGY_ORDER = ("all", *ARTICLE_STRATEGIES, "from:100")
METRIC_NAMES = {"test_accuracy": "test accuracy", "val_accuracy": "validation accuracy"}


def article_results() -> pd.DataFrame:
    """The articles' reported numbers, a row per configuration (notebook 06, "Checks")."""
    return pd.DataFrame(ARTICLE_RESULTS)


def article_result(notebook: str, model: str, strategy: str) -> dict | None:
    """The article's row for one configuration, if it reported one (notebook 04, "The model", "Our numbers")."""
    key = (notebook, model, strategy)
    return next((r for r in ARTICLE_RESULTS if (r["notebook"], r["model"], r["strategy"]) == key), None)


def records_table(records: list[dict]) -> pd.DataFrame:
    """Records as a DataFrame, a row per record (02, "Our numbers beside the article's"; 04; 06)."""
    columns = list(RECORD_FIELDS) + [f for f in EXTRA_FIELDS if f != "history"]
    return pd.DataFrame([{k: r.get(k) for k in columns} for r in records], columns=columns)


def run_kind(profile: str, weights: str | None) -> str:
    """How to read a run: only the full profile with ImageNet weights reproduces an article (04, "Our numbers
    beside the article's"; 06, "One table per profile")."""
    if profile in ("full", "laptop") and weights == "imagenet":
        return "reproduction" if profile == "full" else "laptop run (real data, reduced settings)"
    if profile in ("full", "laptop"):
        return f"{profile} settings, {weights if isinstance(weights, str) else 'random'} weights (not a reproduction)"
    return "smoke run (sample data, not a reproduction)"


def summary_table(records: list[dict]) -> pd.DataFrame:
    """Every record beside the number its article reported for the same configuration: the article's figures
    beside real-data runs only, a difference for reproductions only (notebook 06, "One table per profile")."""
    claims = article_results()[["notebook", "model", "strategy", "metric", "value", "epochs", "fine_tune_epochs",
                                "article_ran"]].rename(columns={"value": "article_value", "epochs": "article_epochs",
                                                                "fine_tune_epochs": "article_fine_tune_epochs",
                                                                "metric": "article_metric"})
    merged = records_table(records).merge(claims, on=["notebook", "model", "strategy"], how="left")
    ours = [merged.at[i, m] for i, m in zip(merged.index, merged["article_metric"].fillna("test_accuracy"))]
    merged["our_value"] = pd.to_numeric(pd.Series(ours, index=merged.index), errors="coerce")
    merged["kind"] = [run_kind(p, w) for p, w in zip(merged["profile"], merged["weights"])]
    for column in ("article_value", "article_epochs", "article_fine_tune_epochs", "article_ran"):
        merged[column] = merged[column].where(merged["kind"].isin(SHOWS_ARTICLE))
    merged["difference"] = (merged["our_value"] - pd.to_numeric(merged["article_value"], errors="coerce")).where(
        merged["kind"] == "reproduction")
    order = merged["strategy"].map(lambda s: STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else len(STRATEGY_ORDER))
    merged = merged.assign(_order=order).sort_values(["notebook", "model", "_order", "variant"], na_position="first")
    return merged.drop(columns="_order").reset_index(drop=True)


def _epochs(epochs, fine_tune_epochs) -> str:
    """'5', or with a fine-tuning phase '5 + 4'; '-' when unknown."""
    if pd.isna(epochs):
        return "-"
    tuned = not pd.isna(fine_tune_epochs) and int(fine_tune_epochs)
    return f"{int(epochs)} + {int(fine_tune_epochs)}" if tuned else f"{int(epochs)}"


def for_readers(table: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Some columns of a summary table, rounded and renamed for readers, epochs as '5 + 4' (`comparison`: the
    "next to the article's" sections of 01-05; 06, "One table per profile")."""
    shown = table.assign(article_metric=table["article_metric"].map(lambda m: METRIC_NAMES.get(m, "-")))
    for epochs in ("epochs", "article_epochs"):
        shown[epochs] = [_epochs(e, f) for e, f in zip(shown[epochs], shown[epochs.replace("epochs", "fine_tune_epochs")])]
    shown = shown.round({"our_value": 4, "article_value": 4, "difference": 4, "inference_ms_per_image": 2,
                         "throughput_images_per_s": 1})
    return shown[list(columns)].rename(columns=columns)


def comparison(records: list[dict], extra: dict[str, Callable[[dict], object]] | None = None) -> pd.DataFrame:
    """Runs beside their article's numbers (the "next to" or "beside the article's" sections of 01, 02, 03,
    05); `extra` adds columns, each computed from a record and put on that record's row."""
    shown = for_readers(summary_table(records), {
        "title": "configuration", "kind": "profile", "our_value": "ours", "article_value": "article",
        "difference": "difference", "article_metric": "metric", "article_ran": "how the article ran it",
        "article_epochs": "article epochs", "epochs": "epochs", "trainable_params": "trainable params",
        "inference_ms_per_image": "ms / image (batch 1)", "throughput_images_per_s": "images / s (batched)"})
    # a smoke row carries no article figure; a laptop row shows it, but no difference
    shown["difference"] = [d if pd.notna(d) else "n/a (reduced settings)" if pd.notna(a) else "-"
                           for d, a in zip(shown["difference"], shown["article"])]
    for column in ("article", "article epochs", "how the article ran it"):
        shown[column] = shown[column].astype(object).where(shown[column].notna(), "-")
    by_title = {r["title"]: r for r in records}
    if extra and len(by_title) != len(records):
        raise ValueError("comparison: two records share a title; give each configuration its own.")
    for name, column in (extra or {}).items():
        shown[name] = [column(by_title[title]) for title in shown["configuration"]]
    return shown


def summary_for_readers(table: pd.DataFrame) -> pd.DataFrame:
    """The summary with short columns, rounded (notebook 06, "One table per profile"; the runner's index)."""
    shown = table.assign(nb=table["notebook"].str[:2], kind=table["kind"].map(lambda k: k.split(" (")[0]),
                         strategy=[s if not isinstance(v, str) else f"{s} ({v})"
                                   for s, v in zip(table["strategy"], table["variant"])])
    return for_readers(shown, {
        "nb": "notebook", "model": "model", "strategy": "strategy", "kind": "profile", "our_value": "ours",
        "article_value": "article", "difference": "difference", "article_metric": "metric", "epochs": "epochs",
        "trainable_params": "trainable params", "inference_ms_per_image": "ms / image",
        "throughput_images_per_s": "images / s", "device": "device"})


def write_summary(table: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """results.csv (every column) and results.md (readers' columns, a table per profile): 06, "One table"."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = atomic_write(folder / "results.csv", lambda tmp: table.to_csv(tmp, index=False))
    readers = summary_for_readers(table)
    readers = readers.astype(object).where(readers.notna(), None)  # tabulate shows None as "-", NaN as "nan"
    sections = [f"## The {profile} profile\n\n" + readers[table["profile"] == profile].to_markdown(index=False, missingval="-")
                for profile in ("full", "laptop", "smoke") if (table["profile"] == profile).any()]
    text = "\n\n".join(sections) + "\n" if sections else "No records yet.\n"
    return csv_path, atomic_write(folder / "results.md", lambda tmp: tmp.write_text(text))
