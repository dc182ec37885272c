"""Seeded, stratified splits and their fingerprints (the data section of every notebook): the same
seed gives the same split, and every record stores the fingerprint of the split it was measured on."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def stratified(labels: np.ndarray, fractions: Sequence[float] | None, seed: int,
               per_class: Sequence[int] | None = None) -> list[np.ndarray]:
    """Indices split per class by `fractions`, or `per_class[k]` images per class for part k; each part is
    ordered round-robin over classes, so a LIMIT keeps it balanced ("The data" of 01-05)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    wanted = fractions if per_class is None else per_class
    parts: list[list[tuple[int, int, int]]] = [[] for _ in wanted]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = len(idx)
        if per_class is not None:
            sizes = np.diff(np.minimum(np.cumsum(per_class), n), prepend=0)
        else:
            shares = np.asarray(fractions, float) / np.sum(fractions)
            sizes = np.floor(shares * n).astype(int)
            for k in range(1, len(sizes)):  # small classes still reach every split
                if sizes[k] == 0 and shares[k] > 0 and n >= len(sizes):
                    sizes[k] = 1
            sizes[0] = n - sizes[1:].sum()
        start = 0
        for k, size in enumerate(sizes):
            parts[k] += [(rank, int(cls), int(i)) for rank, i in enumerate(idx[start:start + size])]
            start += size
    return [np.asarray([i for _, _, i in sorted(part)], dtype=np.int64) for part in parts]


def limited(indices: np.ndarray, limit: int | None) -> np.ndarray:
    """The first `limit` indices of a round-robin ordered part, all without a limit (LIMIT: "The data" of
    01-05)."""
    return indices if limit is None else indices[:limit]


def describe(fractions: Sequence[float], seed: int) -> str:
    """E.g. 'split 80/10/10 (stratified, seed 42)', for `ImageData.report` ("The data" of 01, 02, 04)."""
    return f"split {'/'.join(str(round(100 * f)) for f in fractions)} (stratified, seed {seed})"


def fingerprint(*members: Sequence) -> str:
    """A short hash of split membership, equal seeds giving equal ones ("The data"; 07 compares them)."""
    text = "".join("|" + "".join(f"{item}," for item in split) for split in members)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
