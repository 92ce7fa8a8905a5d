"""The report's tables: per-shift rows (manifest + scores), the cross-model summary."""

from __future__ import annotations

import csv
import math

from emidbench.errors import UserError
from emidbench.rundir import Manifest, RunDir

PER_SHIFT_COLUMNS = ["scenario", "family", "modality", "visual_shift", "visual_severity", "text_shift",
                     "text_severity", "n", "emi", "emi_lo", "emi_hi", "emid", "emid_lo", "emid_hi", "emid_ub",
                     "jsd_v", "jsd_t", "jsd_y_id", "jsd_y_ood", "rp_score", "rp_lo", "rp_hi", "win_rate", "win_lo",
                     "win_hi", "judge_failed"]
NUMERIC = {"emi", "emi_lo", "emi_hi", "emid", "emid_lo", "emid_hi", "emid_ub", "jsd_v", "jsd_t", "jsd_y_id",
           "jsd_y_ood", "rp_score", "rp_lo", "rp_hi", "win_rate", "win_lo", "win_hi"}


def read_metrics(rd: RunDir, model: str) -> list[dict]:
    path = rd.scores_dir(model) / "metrics.csv"
    if not path.is_file():
        raise UserError(f"no scores for model {model!r} in {rd.root}; run `emidbench score {rd.root} --model {model}` first")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows, start=2):
        for c in NUMERIC:
            try:
                _float(r.get(c))
            except ValueError:
                raise UserError(f"{path}:{i}: column {c} is not a number ({r[c]!r})") from None
    return rows


def per_shift_rows(manifest: Manifest, metrics: list[dict], model: str) -> list[dict]:
    """One row per scenario in manifest order. Natural scenarios: visual_shift is the
    domain split (e.g. `mini_wild_hard`), text_shift the language; severities empty."""
    by_name = {m["scenario"]: m for m in metrics}
    unknown = sorted(set(by_name) - {s.name for s in manifest.scenarios})
    if unknown:
        raise UserError(f"scores of model {model} name scenarios not in this run's manifest: {', '.join(unknown[:5])} "
                        "(scores from another run? rerun `emidbench score`)")
    rows = []
    for s in manifest.scenarios:
        m = by_name.get(s.name, {})
        row = {"scenario": s.name, "family": s.family, "modality": s.modality,
               "visual_shift": s.visual.name if s.visual else None,
               "visual_severity": s.visual.severity if s.visual else None,
               "text_shift": s.text.name if s.text else None,
               "text_severity": s.text.severity if s.text else None,
               "n": _int(m.get("n")), "judge_failed": _int(m.get("judge_failed"))}
        if s.family == "natural":
            dom, split, lang = s.extra.get("domain"), s.extra.get("split"), s.extra.get("language")
            row["visual_shift"] = f"{dom}_{split}" if dom else None
            row["text_shift"] = lang if lang and lang != "English" else None
        for c in NUMERIC:
            row[c] = _float(m.get(c))
        rows.append(row)
    return rows


def summary_row(model: str, rows: list[dict], id_name: str) -> dict:
    out: dict = {"model": model}
    id_row = next((r for r in rows if r["scenario"] == id_name), {})
    out["id_emi"], out["id_rp"] = id_row.get("emi"), id_row.get("rp_score")
    ood = [r for r in rows if r["scenario"] != id_name]
    for key, groups in (("family", ("synthetic", "natural", "custom")), ("modality", ("visual", "text", "joint"))):
        for g in groups:
            sel = [r for r in ood if r[key] == g]
            if sel:
                for metric in ("emi", "emid", "rp_score"):
                    out[f"mean_{metric}_{g}"] = _mean([r[metric] for r in sel])
    worst = [r for r in ood if r["emid"] is not None]
    out["worst_by_emid"] = max(worst, key=lambda r: r["emid"])["scenario"] if worst else None
    worst_rp = [r for r in ood if r["rp_score"] is not None]
    out["worst_by_rp"] = min(worst_rp, key=lambda r: r["rp_score"])["scenario"] if worst_rp else None
    return out


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _float(v):
    if v in (None, ""):
        return None
    f = float(v)
    return None if math.isnan(f) else f


def _int(v):
    return None if v in (None, "") else int(float(v))
