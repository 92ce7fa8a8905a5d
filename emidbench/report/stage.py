"""`emidbench report`: per model RUN/report/<model>/{per_shift.csv, correlations.csv,
*.png}; across models RUN/report/{summary.csv, correlations.csv, emid_vs_bound.png}."""

from __future__ import annotations

from pathlib import Path

from emidbench.errors import UserError
from emidbench.report import plots
from emidbench.report.correlations import CORR_COLUMNS, correlations
from emidbench.report.tables import PER_SHIFT_COLUMNS, per_shift_rows, read_metrics, summary_row
from emidbench.rundir import RunDir, read_json
from emidbench.score.table import write_csv


def run_report(run: Path, models: list[str] | None = None, console=None) -> dict[str, Path]:
    rd = RunDir(run)
    manifest = rd.read_manifest()
    scored = sorted(p.name for p in (rd.root / "scores").iterdir() if (p / "metrics.csv").is_file()) \
        if (rd.root / "scores").is_dir() else []
    models = list(models or scored)
    if not models:
        raise UserError(f"no scores in {rd.root}; run `emidbench score {rd.root} --model MODEL` first")
    per_model, corr_all, summary, out = {}, [], [], {}
    id_names = {}
    for m in models:
        metrics = read_metrics(rd, m)
        info = read_json(rd.scores_dir(m) / "score.json") if (rd.scores_dir(m) / "score.json").is_file() else {}
        id_names[m] = info.get("id_scenario", manifest.id_scenario)
    if len(set(id_names.values())) > 1:
        raise UserError("models were scored against different ID sets: "
                        + ", ".join(f"{m}: {i}" for m, i in sorted(id_names.items())) + "; rescore with one --id-scenario")
    for m in models:
        id_name = id_names[m]
        rows = per_shift_rows(manifest, read_metrics(rd, m), m)
        per_model[m] = rows
        d = rd.report_dir(m)
        write_csv(d / "per_shift.csv", rows, PER_SHIFT_COLUMNS)
        corr = correlations(m, rows, id_name)
        write_csv(d / "correlations.csv", corr, CORR_COLUMNS)
        corr_all += corr
        summary.append(summary_row(m, rows, id_name))
        made = [plots.severity_plot(rows, id_name, d / "severity.png", m),
                plots.natural_plot(rows, id_name, d / "natural.png", m),
                plots.grid_plot(rows, id_name, d / "emid_grid.png", m),
                plots.bound_plot({m: rows}, id_name, d / "emid_vs_bound.png")]
        out[m] = d / "per_shift.csv"
        if console:
            from emidbench.report.terminal import shift_table

            console.print(shift_table(m, rows, id_name))
            skipped = [n for n, p in zip(("severity", "natural", "grid", "bound"), made) if p is None]
            if skipped:
                console.print(f"plots not drawn for {m} (no data for them): {', '.join(skipped)}", highlight=False)
    id_name = next(iter(id_names.values()))
    write_csv(rd.root / "report" / "correlations.csv", corr_all, CORR_COLUMNS)
    cols = sorted({k for s in summary for k in s}, key=lambda k: (k != "model", not k.startswith("id_"),
                                                                  k.startswith("worst"), k))
    write_csv(rd.root / "report" / "summary.csv", summary, cols)
    plots.bound_plot(per_model, id_name, rd.root / "report" / "emid_vs_bound.png")
    if console:
        from emidbench.report.terminal import correlation_table

        console.print(correlation_table([c for c in corr_all if c["family"] == "all"]))
        console.print(f"report written to {rd.root / 'report'}", highlight=False)
    return out
