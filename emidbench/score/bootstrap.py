"""Bootstrap over items: resample item indices with replacement from a generator seeded
by (seed, what is being resampled), so each scenario's interval is reproducible on its
own, whatever else is computed."""

from __future__ import annotations

from typing import Callable

import numpy as np

from emidbench.common.hashing import derive_seed


def resample_indices(n_items: int, n_boot: int, seed: int, label: str = ""):
    """The item indices of each resample, as bootstrap_ci draws them."""
    rng = np.random.default_rng(derive_seed(seed, "bootstrap", label))
    for _ in range(n_boot):
        yield rng.integers(0, n_items, n_items)


def bootstrap_ci(stat: Callable[[np.ndarray], float], n_items: int, n_boot: int, seed: int, label: str = "",
                 alpha: float = 0.05, values: bool = False):
    """Percentile interval (lo, hi) of stat(indices) over n_boot resamples; with
    values=True, the resampled statistics themselves."""
    stats = np.array([stat(idx) for idx in resample_indices(n_items, n_boot, seed, label)], dtype=np.float64)
    if values:
        return stats
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)
