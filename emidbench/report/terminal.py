"""What a researcher reads first: per-shift results sorted by EMID (worst first, the
worst highlighted), then the correlations."""

from __future__ import annotations

from rich.table import Table

WORST = 5


def _f(v, digits=3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def shift_table(model: str, rows: list[dict], id_name: str, limit: int = 25) -> Table:
    ood = [r for r in rows if r["scenario"] != id_name]
    ood.sort(key=lambda r: (r["emid"] is None, -(r["emid"] or 0), r["scenario"]))
    idr = next((r for r in rows if r["scenario"] == id_name), None)
    t = Table(title=f"{model}: per-shift results, worst EMID first (ID = {id_name})", title_justify="left")
    for col, just in (("scenario", "left"), ("modality", "left"), ("EMI", "right"), ("EMID [95% CI]", "right"),
                      ("bound", "right"), ("RP", "right"), ("win", "right")):
        t.add_column(col, justify=just, no_wrap=(col == "scenario"))
    if idr:
        t.add_row(f"{id_name} (ID)", "none", _f(idr["emi"]), "0", "", _f(idr["rp_score"], 1), _f(idr["win_rate"], 2),
                  style="dim")
    for i, r in enumerate(ood[:limit]):
        ci = f" [{_f(r['emid_lo'])}, {_f(r['emid_hi'])}]" if r["emid_lo"] is not None else ""
        t.add_row(r["scenario"], r["modality"], _f(r["emi"]), _f(r["emid"]) + ci, _f(r["emid_ub"]),
                  _f(r["rp_score"], 1), _f(r["win_rate"], 2), style="bold red" if i < WORST else None)
    if len(ood) > limit:
        t.caption = f"{len(ood) - limit} more scenarios in per_shift.csv"
    return t


def correlation_table(corr: list[dict]) -> Table:
    t = Table(title="correlations across scenarios", title_justify="left")
    for col in ("model", "family", "x vs y", "n", "Pearson r (p)", "Spearman rho (p)"):
        t.add_column(col, justify="left" if col in ("model", "family", "x vs y") else "right")
    for c in corr:
        pr = f"{c['pearson_r']:.2f} ({c['pearson_p']:.2g})" if c["pearson_r"] is not None else (c["note"] or "")
        sr = f"{c['spearman_rho']:.2f} ({c['spearman_p']:.2g})" if c["spearman_rho"] is not None else ""
        t.add_row(c["model"], c["family"], f"{c['x']} vs {c['y']}", str(c["n"]), pr, sr)
    return t
