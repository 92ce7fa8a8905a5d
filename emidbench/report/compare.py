"""`emidbench report RUN --compare-to FILE.json`: this run's EMI, EMID and EMID upper bound
beside the paper's published ones, per scenario, and the correlation the paper reports.

The authors' results files (`results/pairs-<SYNTHETIC|NATURAL>-ALL-<model>-CLUB_global.json`)
hold dicts `EMI` (ID set included), `EMID` and `EMID_UB` (the shifts) keyed by scenario
name, `PearsonR` / `PearsonPval` (Pearson's r between EMID and EMID_UB over the shifts),
and the settings they were computed with (model_name, v_embedder_name, t_embedder_name,
mi_ckpt_path). A run built from the released sets with the released answers, the paper's
encoders and CLUB_global.pt should land on the same numbers (up to floating point).

    RUN/report/<model>/compare.csv               one row per scenario of either side
    RUN/report/<model>/compare_correlation.csv   Pearson r(EMID, EMID_UB): ours, the paper's

Scenario names are matched as written, and through the manifest's aliases (the natural
ID set is `llava_bench_coco_English` in the released files).
"""

from __future__ import annotations

import math
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.io import csv_text, read_json, write_if_changed
from emidbench.rundir import RunDir

METRICS = (("emi", "EMI"), ("emid", "EMID"), ("emid_ub", "EMID_UB"))
COMPARE_COLUMNS = ["scenario", "paper_name", "in_run", "in_paper"] + \
    [c for ours, _ in METRICS for c in (ours, f"{ours}_paper", f"{ours}_diff")]
CORR_COMPARE_COLUMNS = ["statistic", "ours", "paper", "diff", "n_ours", "n_paper", "note"]
SETTINGS = ("model_name", "v_embedder_name", "t_embedder_name", "mi_ckpt_path", "ds_id")


def read_paper_results(path: Path) -> dict:
    """The results file, checked: {EMI, EMID, EMID_UB: {scenario: float}, PearsonR, PearsonPval, settings}."""
    path = Path(path)
    try:
        data = read_json(path)  # not there, unreadable, or not JSON: one line naming the file (and line)
    except UserError as e:
        raise UserError(f"--compare-to {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"--compare-to {path}: expected a JSON object with EMI, EMID, EMID_UB")
    out: dict = {"settings": {k: data.get(k) for k in SETTINGS if data.get(k) is not None}}
    for _, key in METRICS:
        d = data.get(key)
        if not isinstance(d, dict):
            raise UserError(f"--compare-to {path}: no {key} mapping of scenario -> value (keys: {', '.join(data)})")
        for name, v in d.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UserError(f"--compare-to {path}: {key}[{name!r}] is not a number ({v!r})")
        out[key] = {str(k): float(v) for k, v in d.items()}
    for key in ("PearsonR", "PearsonPval"):
        v = data.get(key)
        out[key] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return out


def compare_rows(rows: list[dict], paper: dict, aliases: dict[str, str]) -> list[dict]:
    """One row per scenario: ours, the paper's, ours - paper (empty where either is missing).
    `aliases`: paper name -> our scenario name."""
    ours = {r["scenario"]: r for r in rows}
    back = {v: k for k, v in aliases.items()}
    paper_names = list(dict.fromkeys(n for _, key in METRICS for n in paper[key]))
    out = []
    for name in [r["scenario"] for r in rows] + [aliases.get(n, n) for n in paper_names]:
        if any(o["scenario"] == name for o in out):
            continue
        pname = name if any(name in paper[k] for _, k in METRICS) else back.get(name, name)
        mine = ours.get(name, {})
        row = {"scenario": name, "paper_name": pname, "in_run": name in ours,
               "in_paper": any(pname in paper[k] for _, k in METRICS)}
        for col, key in METRICS:
            a, b = mine.get(col), paper[key].get(pname)
            row[col], row[f"{col}_paper"] = a, b
            row[f"{col}_diff"] = a - b if a is not None and b is not None else None
        out.append(row)
    return out


def correlation_rows(rows: list[dict], paper: dict) -> list[dict]:
    """Pearson r between EMID and EMID_UB: ours over the scenarios the paper correlates
    (its EMID keys) that this run has both values for; the paper's as published."""
    from scipy import stats

    pts = [(r["emid"], r["emid_ub"]) for r in rows
           if r["in_paper"] and r["paper_name"] in paper["EMID"] and r["emid"] is not None and r["emid_ub"] is not None]
    n_paper = len(paper["EMID"])
    ours = {"r": None, "p": None}
    note = None
    if len(pts) < 3:
        note = f"only {len(pts)} shared scenarios with both values"
    else:
        a, b = zip(*pts)
        if len(set(a)) < 2 or len(set(b)) < 2:
            note = "constant values"
        else:
            res = stats.pearsonr(a, b)
            ours = {"r": float(res.statistic), "p": float(res.pvalue)}
    if note is None and len(pts) != n_paper:
        note = f"ours over {len(pts)} of the paper's {n_paper} scenarios"

    def diff(a, b):
        return a - b if a is not None and b is not None else None

    return [{"statistic": "pearson_r(emid, emid_ub)", "ours": ours["r"], "paper": paper["PearsonR"],
             "diff": diff(ours["r"], paper["PearsonR"]), "n_ours": len(pts), "n_paper": n_paper, "note": note},
            {"statistic": "pearson_p(emid, emid_ub)", "ours": ours["p"], "paper": paper["PearsonPval"],
             "diff": diff(ours["p"], paper["PearsonPval"]), "n_ours": len(pts), "n_paper": n_paper, "note": note}]


def compare_to_paper(run: Path, results: Path, model: str | None = None, console=None) -> Path:
    """Write RUN/report/<model>/compare.csv and compare_correlation.csv; print both."""
    from emidbench.report.tables import per_shift_rows, read_metrics, scored_models

    rd = RunDir(run)
    paper = read_paper_results(results)
    manifest = rd.read_manifest()
    scored = scored_models(rd)
    if model is None:
        named = paper["settings"].get("model_name")
        if len(scored) == 1:
            model = scored[0]
        elif named in scored:
            model = named
        else:
            raise UserError(f"--compare-to: which model? scored: {', '.join(scored) or 'none'}; pass --model")
    rows = per_shift_rows(manifest, read_metrics(rd, model), model)
    aliases = {**{str(k): str(v) for k, v in (manifest.extra.get("aliases") or {}).items()},
               **{s.extra["alias"]: s.name for s in manifest.scenarios if (s.extra or {}).get("alias")}}
    table = compare_rows(rows, paper, aliases)
    shared = [r for r in table if r["in_run"] and r["in_paper"]]
    if not shared:
        raise UserError(f"--compare-to {results}: no scenario of this run is in the results file (its scenarios: "
                        f"{', '.join(list(paper['EMI'])[:3])}, ...); build the run from the same sets "
                        "(`emidbench shift RUN --benchmark changdae/llavabench-shift-synthetic-v1 --suite released`)")
    corr = correlation_rows(table, paper)
    d = rd.report_dir(model)
    d.mkdir(parents=True, exist_ok=True)
    write_if_changed(d / "compare.csv", csv_text(table, COMPARE_COLUMNS).encode("utf-8"))
    write_if_changed(d / "compare_correlation.csv", csv_text(corr, CORR_COMPARE_COLUMNS).encode("utf-8"))
    if console is not None:
        console.print(_table(model, table, paper, results))
        for c in corr[:1]:
            fmt = (lambda v: "-" if v is None else f"{v:.4f}")
            console.print(f"Pearson r(EMID, EMID UB): ours {fmt(c['ours'])} (n={c['n_ours']}), paper "
                          f"{fmt(c['paper'])} (n={c['n_paper']})" + (f"; {c['note']}" if c["note"] else ""),
                          highlight=False)
        only_run = sum(1 for r in table if not r["in_paper"])
        only_paper = sum(1 for r in table if not r["in_run"])
        if only_run or only_paper:
            console.print(f"not compared: {only_run} scenarios only in this run, {only_paper} only in the paper's file",
                          highlight=False)
        console.print(f"comparison written to {d / 'compare.csv'}", highlight=False)
    return d / "compare.csv"


def _table(model: str, table: list[dict], paper: dict, results: Path):
    from rich.table import Table

    settings = ", ".join(f"{k}={v}" for k, v in paper["settings"].items())
    t = Table(title=f"{model} vs {Path(results).name}" + (f" ({settings})" if settings else ""))
    t.add_column("scenario", no_wrap=True)
    for col, key in METRICS:
        t.add_column(key, justify="right")
        t.add_column("paper", justify="right")
        t.add_column("diff", justify="right")

    def f(v):
        return "" if v is None else f"{v:.4f}"

    for r in table:
        if not (r["in_run"] and r["in_paper"]):
            continue
        t.add_row(r["scenario"], *[f(r[c]) for col, _ in METRICS for c in (col, f"{col}_paper", f"{col}_diff")])
    return t
