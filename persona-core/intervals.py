"""Uncertainty of a proportion whose trials come in clusters: a judge asked about one persona (or one row) in both
response orders gives two answers that are not independent, so the unit of resampling is the cluster, not the answer.

Treating the two orders as independent trials understates the uncertainty by up to √2 (a judge that answers the same
in both orders); the cluster-robust standard error and the cluster bootstrap do not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONFIDENCE = 0.95
RESAMPLES = 2000


def cluster_stderr(clusters: Sequence[tuple[int, int]]) -> float:
    """Cluster-robust standard error of ``sum(successes) / sum(trials)`` over ``(successes, trials)`` clusters
    (the ratio estimator's linearization, with the small-sample factor n / (n - 1)); 0 for fewer than two clusters,
    where it is undefined."""
    clusters = [(s, t) for s, t in clusters if t > 0]
    n = len(clusters)
    if n < 2:
        return 0.0
    total = sum(t for _, t in clusters)
    p = sum(s for s, _ in clusters) / total
    spread = sum((s - p * t) ** 2 for s, t in clusters)
    return math.sqrt(n / (n - 1) * spread) / total


def cluster_bootstrap(
    clusters: Sequence[tuple[int, int]], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile interval of ``sum(successes) / sum(trials)``, resampling whole clusters (scipy's paired
    bootstrap); None for fewer than two clusters."""
    import numpy as np
    from scipy.stats import bootstrap

    clusters = [(s, t) for s, t in clusters if t > 0]
    if len(clusters) < 2:
        return None
    successes = np.array([s for s, _ in clusters], dtype=float)
    trials = np.array([t for _, t in clusters], dtype=float)
    result = bootstrap(
        (successes, trials),
        lambda s, t, axis: s.sum(axis=axis) / t.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)
