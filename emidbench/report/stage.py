"""`emidbench report`: RUN/shifts + RUN/scores -> RUN/report/.

    RUN/report/<model>/per_shift.csv     one row per scenario (PER_SHIFT_COLUMNS, + emid_true_ub
                                         when the scores have it)
    RUN/report/<model>/correlations.csv  that model's correlations (CORR_COLUMNS)
    RUN/report/<model>/*.png             severity, natural, emid_grid, emid_vs_bound; icl (choice
                                         runs with in-context-example scenarios)
    RUN/report/summary.csv               one row per model
    RUN/report/correlations.csv          every reported model's correlations
    RUN/report/emid_vs_bound.png         every reported model in one scatter
    RUN/report/index.html                all of it as one self-contained page (page.py)

A figure with no data in this run (no synthetic grid, say) is not drawn, and an old
copy of it from an earlier report is removed, so what is on disk is this report.
"""

from __future__ import annotations

from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.io import write_csv, write_if_changed
from emidbench.report import plots
from emidbench.report.correlations import CORR_COLUMNS, correlations
from emidbench.report.tables import (
    check_id_row,
    has_choices,
    per_shift_columns,
    per_shift_rows,
    read_metrics,
    scored_models,
    summary_columns,
    summary_row,
)
from emidbench.rundir import RunDir
from emidbench.rundir.records import ScoreRecord

PAGE = "index.html"
MODEL_PLOTS = {"severity": plots.severity_plot, "natural": plots.natural_plot, "emid_grid": plots.grid_plot}
CAPTIONS = {
    "severity": ("Synthetic shifts by severity", "RP score and EMI per shift type, each on its own severity "
                 "scale (0 = the ID set); error bars are 95% bootstrap intervals when computed."),
    "natural": ("Natural shifts", "RP score and EMI per question language and visual domain split (ID, easy, "
                "normal, hard: images increasingly far from the ID set)."),
    "emid_grid": ("EMID over the synthetic grid", "Rows: visual shift, columns: text shift; red = information "
                  "lost against the ID set."),
    "emid_vs_bound": ("EMID vs its upper bound", "One point per shifted scenario; the least-squares line over "
                      "the data; the bound holds for points below y = x."),
    "icl": ("Accuracy with in-context examples", "Accuracy against the number K of in-context examples, per set "
            "and example source (solid: from the target domain, dashed: from the ID domain); K = 0 is the set "
            "without examples; dotted: chance."),
}


def run_report(run: Path, models: list[str] | None = None, console=None) -> dict[str, Path]:
    """Write RUN/report/; returns each model's per_shift.csv path."""
    rd = RunDir(run)
    if not rd.root.is_dir():
        raise UserError(f"{rd.root}: no such run directory")
    manifest = rd.read_manifest()  # no shifts: "run `emidbench shift` first"
    models = _models_to_report(rd, models)
    metrics, infos, id_name = _read_scores(rd, manifest, models)
    _warn_if_estimators_differ(rd, models, console)
    per_model = {}
    for m in models:  # every model checked before anything is written
        per_model[m] = rows = per_shift_rows(manifest, metrics[m], m)
        check_id_row(rows, id_name, m)

    corr_by, summary, figures, out = {}, [], {}, {}
    for m in models:
        corr_by[m], figures[m] = _write_model(rd, m, per_model[m], id_name, console)
        summary.append(summary_row(m, per_model[m], id_name))
        out[m] = rd.report_dir(m) / "per_shift.csv"

    top = rd.root / "report"
    write_csv(top / "correlations.csv", [c for m in models for c in corr_by[m]], CORR_COLUMNS)
    write_csv(top / "summary.csv", summary, summary_columns(summary))
    svg = _draw(top / "emid_vs_bound.png", plots.bound_plot(per_model, id_name))
    if svg is not None and len(models) > 1:
        title, caption = CAPTIONS["emid_vs_bound"]
        figures[""] = [(f"{title}, all models", caption, svg)]

    from emidbench.report import examples, page

    html = page.build_page(run_name=rd.root.resolve().name, manifest=manifest, id_name=id_name, models=models,
                           per_model=per_model, corr=corr_by, summary=summary, infos=infos, figures=figures,
                           galleries=examples.build(rd, manifest, id_name, models))
    write_if_changed(top / PAGE, html.encode("utf-8"))
    if console:
        console.print(f"report written to {top} (the page: {top / PAGE})", highlight=False)
    return out


def _models_to_report(rd: RunDir, models: list[str] | None) -> list[str]:
    """The models asked for, else every scored one; none scored: one line saying what to run."""
    scored = scored_models(rd)
    if not models and not scored:
        answered = rd.models()
        if not answered:
            raise UserError(f"{rd.root}: no model answers yet; run `emidbench eval {rd.root} --model MODEL` first")
        raise UserError(f"{rd.root}: no scores yet; run `emidbench score {rd.root} --model {answered[0]}` first "
                        f"(answers from: {', '.join(answered)})")
    return list(dict.fromkeys(models or scored))


def _read_scores(rd: RunDir, manifest, models: list[str]) -> tuple[dict, dict, str]:
    """Each model's metrics and score record, and the one ID set they were all measured against."""
    metrics, id_names, infos = {}, {}, {}
    for m in models:
        metrics[m] = read_metrics(rd, m)  # a model without scores: one line naming the scored ones
        record = ScoreRecord.read(rd.score_record_path(m))
        infos[m] = info = record.to_json() if record else {}
        id_names[m] = info.get("id_scenario") or manifest.id_scenario
        if id_names[m] not in {s.name for s in manifest.scenarios}:
            raise UserError(f"scores of model {m} were measured against ID set {id_names[m]!r}, which is not in "
                            f"this run's manifest; rerun `emidbench score {rd.root} --model {m}`")
    if len(set(id_names.values())) > 1:
        raise UserError("models were scored against different ID sets ("
                        + ", ".join(f"{m}: {i}" for m, i in sorted(id_names.items()))
                        + "); rescore them with one --id-scenario")
    return metrics, infos, id_names[models[0]]


def _warn_if_estimators_differ(rd: RunDir, models: list[str], console) -> None:
    estimators = {m: _estimator_of(rd, m) for m in models}
    if console and len(models) > 1 and (len(set(estimators.values())) > 1 or
                                        any(e.startswith("fit") for e in estimators.values())):
        console.print("warning: the models were scored with different CLUB estimators ("
                      + ", ".join(f"{m}: {e}" for m, e in sorted(estimators.items()))
                      + "); their EMI and EMID differ by estimator noise too — rescore them with the run's shared "
                      "estimator (the default) to compare them", highlight=False, soft_wrap=True)


def _write_model(rd: RunDir, m: str, rows: list[dict], id_name: str, console) -> tuple[list, list]:
    """RUN/report/<model>/: per_shift.csv, correlations.csv, the figures; the terminal
    tables. -> (the correlation rows, the page's figures: (title, caption, svg))."""
    d = rd.report_dir(m)
    write_csv(d / "per_shift.csv", rows, per_shift_columns(rows))
    corr = correlations(m, rows, id_name)
    write_csv(d / "correlations.csv", corr, CORR_COLUMNS)
    drawn = {name: _draw(d / f"{name}.png", fn(rows, id_name, m)) for name, fn in MODEL_PLOTS.items()}
    drawn["emid_vs_bound"] = _draw(d / "emid_vs_bound.png", plots.bound_plot({m: rows}, id_name))
    if has_choices(rows):  # choice runs only (an open-ended run's figures and notes stay as they were)
        drawn["icl"] = _draw(d / "icl.png", plots.icl_plot(rows, id_name, m))
    if console:
        from emidbench.report.terminal import correlation_table, shift_table

        console.print(shift_table(m, rows, id_name))
        console.print(correlation_table(m, corr))
        skipped = [n for n, svg in drawn.items() if svg is None]
        if skipped:
            console.print(f"{m}: no data for the plots {', '.join(skipped)}; not drawn", highlight=False)
    return corr, [(*CAPTIONS[name], svg) for name, svg in drawn.items() if svg is not None]


def _estimator_of(rd: RunDir, model: str) -> str:
    """Which estimator a model's scores used, as score.json records it."""
    record = ScoreRecord.read(rd.score_record_path(model))
    est = (record.estimator if record else None) or {}
    kind = est.get("kind", "unknown")
    return f"{kind} {est.get('sha256') or est.get('path') or ''}".strip() if kind not in ("fit-per-model", "fit") else \
        f"fitted on {model} alone"


def _draw(path: Path, fig) -> bytes | None:
    """Write a figure's PNG to path and return its SVG (for the page); without data for
    it (fig None), remove a stale copy instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig is None:
        path.unlink(missing_ok=True)
        return None
    png, svg = plots.render(fig)
    write_if_changed(path, png)  # atomic, and only when the bytes differ: a rerun touches nothing
    return svg


def open_page(path: Path, say=print) -> bool:
    """Open the page in the user's web browser ($BROWSER or the platform's default).
    Without one (a server, a container) nothing is opened and the path is printed."""
    import webbrowser

    uri = Path(path).resolve().as_uri()
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        say(f"no web browser found; open {uri} yourself")
        return False
    if not browser.open(uri):
        say(f"the browser did not open; open {uri} yourself")
        return False
    say(f"opened {uri}")
    return True
