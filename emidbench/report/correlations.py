"""Correlations across scenarios — the paper's EMI-RP table and Figures 3-4 as numbers.

Per model, per family (synthetic, natural, custom) and over all scenarios: Pearson and
Spearman (scipy.stats) with p-values and n for

    emi   against rp_score               does EMI track the judge's relative preference?
    emi   against win_rate               ... and its win rate?
    emi   against accuracy               choice scenarios (only when the run has some)
    emid  against emid_ub                Figure 3: EMID below its bound, with the
                                         least-squares line emid = slope * emid_ub + intercept
    emid  against jsd_v                  Figure 4: EMID against the covariate-shift
    emid  against jsd_t                  terms alone (visual, text) ...
    emid  against sqrt_jsd_v+sqrt_jsd_t  ... and their sum as the bound uses it

EMI correlations include the ID row (it is one of the sets EMI is measured on); EMID
ones exclude it (EMID is 0 there by definition). A family's rows are its scenarios plus
the ID row. A pair with fewer than 3 finite points or a constant side gets n and empty
coefficients, with the reason in `note`.
"""

from __future__ import annotations

import math

import numpy as np

COVARIATE = "sqrt_jsd_v+sqrt_jsd_t"
PAIRS = [("emi", "rp_score"), ("emi", "win_rate"), ("emid", "emid_ub"), ("emid", "jsd_v"), ("emid", "jsd_t"),
         ("emid", COVARIATE)]
CHOICE_PAIRS = [("emi", "accuracy")]  # only in runs with choice scenarios
SLOPE_PAIR = ("emid", "emid_ub")
FAMILIES = ("synthetic", "natural", "custom")
CORR_COLUMNS = ["model", "family", "metric", "against", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p",
                "slope", "intercept", "note"]


def _value(row: dict, key: str):
    if key == COVARIATE:
        if row.get("jsd_v") is None or row.get("jsd_t") is None:
            return None
        return math.sqrt(max(row["jsd_v"], 0.0)) + math.sqrt(max(row["jsd_t"], 0.0))
    return row.get(key)


def points(rows: list[dict], metric: str, against: str, id_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The (metric, against) pairs a correlation is computed on, in row order."""
    use = [r for r in rows if not (metric == "emid" and r["scenario"] == id_name)]
    pts = [(_value(r, metric), _value(r, against)) for r in use]
    pts = [(a, b) for a, b in pts if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if not pts:
        return np.empty(0), np.empty(0)
    a, b = np.array(pts, dtype=float).T
    return a, b


def correlations(model: str, rows: list[dict], id_name: str) -> list[dict]:
    from scipy import stats

    out = []
    groups = [("all", rows)] + [(f, [r for r in rows if r["family"] in (f, "id")]) for f in FAMILIES
                                if any(r["family"] == f for r in rows)]
    pairs = PAIRS + (CHOICE_PAIRS if any(r.get("accuracy") is not None for r in rows) else [])
    for family, sel in groups:
        for metric, against in pairs:
            a, b = points(sel, metric, against, id_name)
            row = {**dict.fromkeys(CORR_COLUMNS), "model": model, "family": family, "metric": metric,
                   "against": against, "n": len(a)}
            if len(a) < 3:
                row["note"] = "fewer than 3 scenarios with both values"
            elif np.ptp(a) == 0 or np.ptp(b) == 0:
                row["note"] = f"{metric if np.ptp(a) == 0 else against} is constant"
            else:
                pr = stats.pearsonr(b, a)
                sr = stats.spearmanr(b, a)
                row.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue),
                           spearman_rho=float(sr.statistic), spearman_p=float(sr.pvalue))
                if (metric, against) == SLOPE_PAIR:
                    # Figure 3: the least-squares line of EMID on its bound.
                    slope, intercept = np.polyfit(b, a, 1)
                    row.update(slope=float(slope), intercept=float(intercept))
            out.append(row)
    return out
