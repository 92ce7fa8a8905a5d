"""Correlations across scenarios — the paper's EMI-RP table and Figures 3-4 as numbers.

Per model, per family (synthetic, natural) and over all scenarios: Pearson and Spearman
(scipy.stats) with p-values and n for EMI vs RP score, EMI vs win rate, EMID vs the EMID
upper bound, and EMID vs the covariate-shift terms alone (sqrt JSD_v + sqrt JSD_t).
EMI correlations include the ID row; EMID ones exclude it (EMID is 0 there by
definition). A pair with fewer than 3 finite points or a constant side gets n and
empty coefficients, with the reason in `note`.
"""

from __future__ import annotations

import math

import numpy as np

PAIRS = [("emi", "rp_score"), ("emi", "win_rate"), ("emid", "emid_ub"), ("emid", "covariate_terms")]


def _value(row: dict, key: str):
    if key == "covariate_terms":
        if row.get("jsd_v") is None or row.get("jsd_t") is None:
            return None
        return math.sqrt(max(row["jsd_v"], 0)) + math.sqrt(max(row["jsd_t"], 0))
    return row.get(key)


def correlations(model: str, rows: list[dict], id_name: str) -> list[dict]:
    from scipy import stats

    out = []
    families = [("all", rows)] + [(f, [r for r in rows if r["family"] in (f, "id")]) for f in ("synthetic", "natural")
                                  if any(r["family"] == f for r in rows)]
    for family, sel in families:
        for a, b in PAIRS:
            use = [r for r in sel if not (a == "emid" and r["scenario"] == id_name)]
            pts = [(_value(r, a), _value(r, b)) for r in use]
            pts = [(x, y) for x, y in pts if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
            row = {"model": model, "family": family, "x": a, "y": b, "n": len(pts), "pearson_r": None,
                   "pearson_p": None, "spearman_rho": None, "spearman_p": None, "slope": None, "intercept": None,
                   "note": None}
            if len(pts) < 3:
                row["note"] = "fewer than 3 scenarios with both values"
            else:
                x, y = np.array(pts).T
                if np.ptp(x) == 0 or np.ptp(y) == 0:
                    row["note"] = "a constant column"
                else:
                    pr = stats.pearsonr(x, y)
                    sr = stats.spearmanr(x, y)
                    row.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue),
                               spearman_rho=float(sr.statistic), spearman_p=float(sr.pvalue))
                    if (a, b) == ("emid", "emid_ub"):
                        # Figure 3: the least-squares line of EMID on the bound.
                        slope, intercept = np.polyfit(y, x, 1)
                        row.update(slope=float(slope), intercept=float(intercept))
            out.append(row)
    return out


CORR_COLUMNS = ["model", "family", "x", "y", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "slope",
                "intercept", "note"]
