"""Exact evaluation metrics computed here (no sklearn): ROC AUC by ranks with ties, and accuracy.

The log loss that training reports is the model's own mean binary cross-entropy on the logits
(:class:`model.dlrm.DLRMTrain`), weighted by batch size over a reporting interval.
"""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC: P(a random positive scores above a random negative), ties counting 1/2.

    Rank-based (Mann-Whitney U) with average ranks for tied scores, O(n log n). ``nan`` when the labels
    hold only one class.
    """
    y = np.asarray(labels).ravel() > 0.5
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels has {y.shape[0]} entries but scores has {s.shape[0]}")
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    # average 1-based rank of each tie group: groups start where the sorted score changes
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], s_sorted.shape[0]]
    avg_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty_like(s)
    ranks[order] = np.repeat(avg_rank, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Share of samples whose probability ``scores`` falls on the side of ``threshold`` of their label."""
    y = np.asarray(labels).ravel() > 0.5
    return float(np.mean((np.asarray(scores).ravel() > threshold) == y)) if y.size else float("nan")
