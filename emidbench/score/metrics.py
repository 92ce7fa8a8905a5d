"""Per-scenario EMI, EMID and the EMID upper bound from embeddings.

For each scenario: x_v (image), x_t (question), y_hat (model answer), y (reference),
n x d each, rows L2-normalised and aligned by item. The query embedding is
x = (x_v + x_t) / 2, as the reference implementation builds it.
EMI = CLUB(x, y_hat) - CLUB(x, y) on the whole set; EMID = EMI(ID) - EMI(shifted), the
ID EMI computed once and reused; the bound's terms are von Neumann JSDs (rjsd.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emidbench.common.errors import UserError
from emidbench.score.bootstrap import resample_indices
from emidbench.score.club import CLUB
from emidbench.score.rjsd import CovSet, emid_true_bound, emid_upper_bound


@dataclass
class EmbeddingSet:
    x_v: np.ndarray
    x_t: np.ndarray
    y_hat: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        n = {a.shape[0] for a in (self.x_v, self.x_t, self.y_hat, self.y)}
        if len(n) != 1:
            raise UserError(f"embedding arrays of one scenario have different row counts {sorted(n)}")

    @property
    def x(self) -> np.ndarray:
        return (self.x_v + self.x_t) / 2

    def __len__(self) -> int:
        return self.x_v.shape[0]

    def take(self, idx: np.ndarray) -> "EmbeddingSet":
        return EmbeddingSet(self.x_v[idx], self.x_t[idx], self.y_hat[idx], self.y[idx])


class IndexedSet:
    """One scenario's embeddings as row indices into a table shared by every scenario
    (the embedding cache's matrix: one row per distinct image or text). A scenario holds
    4 n integers, not 4 n d floats: an image or question that appears in 60 shifted sets
    is held once, so score's memory grows with the distinct inputs, not with scenarios x
    items. The arrays of EmbeddingSet are gathered when asked for, and dropped after use."""

    def __init__(self, table: np.ndarray, v: np.ndarray, t: np.ndarray, y_hat: np.ndarray, y: np.ndarray):
        n = {len(v), len(t), len(y_hat), len(y)}
        if len(n) != 1:
            raise UserError(f"embedding rows of one scenario have different counts {sorted(n)}")
        self.table = table
        self.rows = {"x_v": np.asarray(v), "x_t": np.asarray(t), "y_hat": np.asarray(y_hat), "y": np.asarray(y)}

    x_v = property(lambda self: self.table[self.rows["x_v"]])
    x_t = property(lambda self: self.table[self.rows["x_t"]])
    y_hat = property(lambda self: self.table[self.rows["y_hat"]])
    y = property(lambda self: self.table[self.rows["y"]])

    @property
    def x(self) -> np.ndarray:
        return (self.x_v + self.x_t) / 2

    def __len__(self) -> int:
        return len(self.rows["x_v"])

    def take(self, idx: np.ndarray) -> "IndexedSet":
        return IndexedSet(self.table, *(r[idx] for r in self.rows.values()))


def emi_of(club: CLUB, s: EmbeddingSet) -> float:
    x = s.x
    return club.estimate(x, s.y_hat) - club.estimate(x, s.y)


def emis_of(clubs: list[CLUB], s: EmbeddingSet) -> np.ndarray:
    """EMI under each estimator of an ensemble."""
    return np.array([emi_of(c, s) for c in clubs], dtype=np.float64)


def score_scenarios(id_name: str, sets: dict[str, EmbeddingSet], club: CLUB | list[CLUB],
                    entropy_scaler: float | None = None, bootstrap: int = 0, seed: int = 0,
                    spread: dict | None = None, steps=None, advance=None) -> list[dict]:
    """One row per scenario (in the order of `sets`), the ID row with emid 0.

    With a list of estimators (an ensemble), EMI is their mean and each bootstrap resample
    is evaluated under every one of them, the interval taken over all of those values: it
    covers the estimators' spread as well as the items'. `spread`, if given, receives per
    scenario the standard deviation of EMID across the estimators. `steps` (a
    common.progress.StepTimes) gets the bootstrap's time as step "bootstrap";
    `advance(1)` is called after each scenario (a progress bar)."""
    import contextlib

    def timed_bootstrap():
        return steps.step("bootstrap") if steps is not None else contextlib.nullcontext()

    if id_name not in sets:
        raise UserError(f"ID scenario {id_name!r} has no embeddings (have: {', '.join(sets)})")
    clubs = list(club) if isinstance(club, (list, tuple)) else [club]
    ref = sets[id_name]
    emis_id = emis_of(clubs, ref)
    emi_id = float(emis_id.mean())
    cov_id = {k: CovSet(getattr(ref, k)) for k in ("x_v", "x_t")}
    jsd_y_id = CovSet(ref.y_hat).jsd(CovSet(ref.y))
    boot_id = None
    if bootstrap:
        with timed_bootstrap():
            boot_id = _boot_emis(clubs, ref, bootstrap, seed, id_name)
    rows = []
    for name, s in sets.items():
        emis = emis_id if name == id_name else emis_of(clubs, s)
        e = float(emis.mean())
        if spread is not None:
            spread[name] = float(np.std(emis_id - emis))
        jsd_v = cov_id["x_v"].jsd(CovSet(s.x_v)) if name != id_name else 0.0
        jsd_t = cov_id["x_t"].jsd(CovSet(s.x_t)) if name != id_name else 0.0
        jsd_y_ood = jsd_y_id if name == id_name else CovSet(s.y_hat).jsd(CovSet(s.y))
        row = {"scenario": name, "n": len(s), "emi": e, "emid": emi_id - e, "emid_ub": None,
               "jsd_v": jsd_v, "jsd_t": jsd_t, "jsd_y_id": jsd_y_id, "jsd_y_ood": jsd_y_ood}
        row["emid_ub"] = emid_upper_bound(jsd_v, jsd_t, jsd_y_id, jsd_y_ood)
        if entropy_scaler is not None:
            row["emid_true_ub"] = emid_true_bound(jsd_v, jsd_t, jsd_y_id, jsd_y_ood, entropy_scaler)
        if bootstrap:
            with timed_bootstrap():
                b = boot_id if name == id_name else _boot_emis(clubs, s, bootstrap, seed, name)
            row["emi_lo"], row["emi_hi"] = _percentiles(b)
            # EMID: the ID and the shifted set resampled independently (they are different items).
            row["emid_lo"], row["emid_hi"] = (0.0, 0.0) if name == id_name else _percentiles(boot_id - b)
        rows.append(row)
        if advance is not None:
            advance(1)
    return rows


def _boot_emis(clubs: list[CLUB], s: EmbeddingSet, n_boot: int, seed: int, name: str) -> np.ndarray:
    """n_boot x K: each resample (the same ones whatever K) under each estimator. The
    resamples are bootstrap_ci's (same generator, same draws); their EMIs come from
    CLUB.resampled_estimates, all at once."""
    n = len(s)
    weights = np.stack([np.bincount(idx, minlength=n) / n for idx in resample_indices(n, n_boot, seed, name)])
    x = s.x
    return np.stack([c.resampled_estimates(x, s.y_hat, weights) - c.resampled_estimates(x, s.y, weights)
                     for c in clubs], axis=1)


def _percentiles(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    lo, hi = np.percentile(np.ravel(values), [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)
