"""The report's tables: per-shift rows (manifest + scores), the cross-model summary."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.rundir import RunDir
from emidbench.rundir.manifest import Manifest
from emidbench.rundir.metrics import CHOICE_PER_SHIFT, OPTIONAL_COLUMNS, PER_SHIFT_COLUMNS

# Tuples, not sets: a fixed order, so the first bad cell reported is always the same one.
NUMERIC = tuple(c for c in PER_SHIFT_COLUMNS[PER_SHIFT_COLUMNS.index("emi"):] if c != "judge_failed") \
    + tuple(OPTIONAL_COLUMNS) + tuple(c for c in CHOICE_PER_SHIFT if c != "n_unparsed")


def has_choices(rows: list[dict]) -> bool:
    """Some scenario of the run is a choice task (it has an accuracy)."""
    return any(r.get("accuracy") is not None for r in rows)


def per_shift_columns(rows: list[dict]) -> list[str]:
    """PER_SHIFT_COLUMNS, plus each optional column some row has a value in, plus the
    choice columns when the run has choice scenarios (blank in open-ended rows)."""
    cols = list(PER_SHIFT_COLUMNS)
    for col, after in OPTIONAL_COLUMNS.items():
        if any(r.get(col) is not None for r in rows):
            cols.insert(cols.index(after) + 1, col)
    return cols + (list(CHOICE_PER_SHIFT) if has_choices(rows) else [])
COUNTS = ("n", "n_missing", "n_failed", "judge_failed", "n_unparsed")


def scored_models(rd: RunDir) -> list[str]:
    return rd.scored_models()


def read_metrics(rd: RunDir, model: str) -> list[dict]:
    path = rd.metrics_path(model)
    if Path(model).name != model or not path.is_file():
        scored = ", ".join(scored_models(rd)) or "none"
        raise UserError(f"no scores for model {model!r} in {rd.root / 'scores'} (scored: {scored}); "
                        f"run `emidbench score {rd.root} --model {model}` first")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: cannot read the metrics table ({e}); rerun `emidbench score`") from None
    if "scenario" not in header or "n" not in header:
        raise UserError(f"{path}: not a metrics table written by `emidbench score` (no 'scenario' and 'n' "
                        "columns); rerun `emidbench score`")
    for i, r in enumerate(rows, start=2):
        for c in NUMERIC + COUNTS:
            try:
                _float(r.get(c))
            except ValueError:
                raise UserError(f"{path}:{i}: column {c} is not a number ({r[c]!r})") from None
            raw = float(r[c]) if r.get(c) not in (None, "") else 0.0
            if c in COUNTS and not (math.isfinite(raw) and raw == int(raw) and raw >= 0):
                raise UserError(f"{path}:{i}: column {c} is not a count ({r[c]!r})")
    return rows


def per_shift_rows(manifest: Manifest, metrics: list[dict], model: str) -> list[dict]:
    """One row per scenario in manifest order. Natural scenarios: visual_shift is the
    domain split (e.g. `mini_wild_hard`), text_shift the language; severities empty.

    The scores must describe this run's shifted data: every manifest scenario scored,
    none unknown, and each scenario's item counts adding up to its size in the manifest
    (scores made before `emidbench shift` was rerun with other options do not)."""
    by_name = {m["scenario"]: m for m in metrics}
    names = [s.name for s in manifest.scenarios]
    unknown = [n for n in by_name if n not in set(names)]
    if unknown:
        raise UserError(f"scores of model {model} name scenarios not in this run's manifest: {', '.join(unknown[:5])} "
                        "(scores from another run? rerun `emidbench score`)")
    absent = [n for n in names if n not in by_name]
    if absent:
        raise UserError(f"scores of model {model} lack {len(absent)} scenarios of this run's manifest "
                        f"({', '.join(absent[:5])}); the shifts changed after scoring: rerun `emidbench score`")
    rows = []
    for s in manifest.scenarios:
        m = by_name[s.name]
        counted = [_int(m.get(c)) for c in ("n", "n_missing", "n_failed")]
        if all(c is not None for c in counted) and sum(counted) != s.n:
            raise UserError(f"scores of model {model} for scenario {s.name} cover {sum(counted)} questions but the "
                            f"run's shifted set has {s.n}; the shifts changed after scoring: rerun `emidbench score`")
        row = {"scenario": s.name, "family": s.family, "modality": s.modality,
               "visual_shift": s.visual.name if s.visual else None,
               "visual_severity": s.visual.severity if s.visual else None,
               "text_shift": s.text.name if s.text else None,
               "text_severity": s.text.severity if s.text else None,
               "n": _int(m.get("n")), "judge_failed": _int(m.get("judge_failed")),
               "n_unparsed": _int(m.get("n_unparsed"))}
        if s.family == "natural":
            dom, split, lang = s.extra.get("domain"), s.extra.get("split"), s.extra.get("language")
            row["visual_shift"] = (f"{dom}_{split}" if split else dom) if dom else None
            row["text_shift"] = lang if lang and lang != "English" else None
        for c in NUMERIC:
            row[c] = _float(m.get(c))
        rows.append(row)
    return rows


def check_id_row(rows: list[dict], id_name: str, model: str) -> None:
    """EMID is 0 on the ID set by definition; any other value means the scores were
    measured against another ID set than the one this report uses."""
    idr = next(r for r in rows if r["scenario"] == id_name)
    if idr["emid"] is not None and abs(idr["emid"]) > 1e-9:
        raise UserError(f"scores of model {model} were measured against another ID set: EMID of {id_name} is "
                        f"{idr['emid']:.4g}, not 0; rerun `emidbench score` with --id-scenario {id_name}")


GROUPS = (("family", ("synthetic", "natural", "custom")), ("modality", ("visual", "text", "joint")))
SUMMARY_METRICS = ("emi", "emid", "emid_ub", "rp_score", "win_rate")


def summary_row(model: str, rows: list[dict], id_name: str) -> dict:
    """ID scores, mean OOD scores per family and per modality, the worst scenarios."""
    out: dict = {"model": model, "id_scenario": id_name}
    id_row = next((r for r in rows if r["scenario"] == id_name), {})
    for metric in ("n", "emi", "rp_score", "win_rate"):
        out[f"id_{metric}"] = id_row.get(metric)
    ood = [r for r in rows if r["scenario"] != id_name]
    out["n_shifts"] = sum(1 for r in ood if r["emid"] is not None)  # scored ones: a set without answers has none
    for key, groups in GROUPS:
        for g in groups:
            sel = [r for r in ood if r[key] == g]
            if sel:
                for metric in SUMMARY_METRICS:
                    out[f"mean_{metric}_{g}"] = _mean([r[metric] for r in sel])
    if has_choices(rows):  # choice runs only: an open-ended run's summary keeps its columns
        out["id_accuracy"] = id_row.get("accuracy")
        for key, groups in GROUPS:
            for g in groups:
                sel = [r for r in ood if r[key] == g]
                if sel:
                    out[f"mean_accuracy_{g}"] = _mean([r.get("accuracy") for r in sel])
    worst = [r for r in ood if r["emid"] is not None]
    out["worst_by_emid"] = max(worst, key=lambda r: (r["emid"], r["scenario"]))["scenario"] if worst else None
    worst_rp = [r for r in ood if r["rp_score"] is not None]
    out["worst_by_rp"] = min(worst_rp, key=lambda r: (r["rp_score"], r["scenario"]))["scenario"] if worst_rp else None
    return out


def summary_columns(summary: list[dict]) -> list[str]:
    """A fixed order (ID, then per metric the families and modalities present, then the
    worst scenarios), whatever order the rows' keys came in."""
    have = {k for s in summary for k in s}
    head = ["model", "id_scenario", "id_n", "id_emi", "id_rp_score", "id_win_rate", "n_shifts"]
    means = [f"mean_{m}_{g}" for m in (*SUMMARY_METRICS, "accuracy") for _, groups in GROUPS for g in groups]
    return [c for c in head + ["id_accuracy"] + means + ["worst_by_emid", "worst_by_rp"] if c in have]


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
