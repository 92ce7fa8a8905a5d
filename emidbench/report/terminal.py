"""What a researcher reads first: per-shift results sorted by EMID (worst first, the
worst highlighted), then the correlations. Both fit an 80-column terminal: scenario
names lose the prefix they share (the ID set's name), numbers are short, and a name
that is still too long is cut with an ellipsis rather than wrapped."""

from __future__ import annotations

import os

from rich import box
from rich.table import Table

from emidbench.report.correlations import COVARIATE

WORST = 5  # at most this many rows highlighted as the worst shifts (and at most a quarter of them)
LIMIT = 25  # rows shown; the rest are in per_shift.csv
LABELS = {"emi": "EMI", "emid": "EMID", "emid_ub": "UB", "rp_score": "RP", "win_rate": "win", "accuracy": "acc",
          "jsd_v": "JSD_v",
          "jsd_t": "JSD_t", COVARIATE: "sqrt-JSD sum"}  # ASCII: legacy consoles cannot print a root sign


def _f(v, digits: int = 3) -> str:
    if v is None:
        return ""
    return f"{v + 0.0 if round(v, digits) else 0.0:.{digits}f}"  # never "-0.000"


def _ci(lo, hi) -> str:
    return "" if lo is None or hi is None else f"[{_f(lo, 2)},{_f(hi, 2)}]"


def _p(p) -> str:
    return "<1e-4" if p < 1e-4 else f"{p:.4f}" if p >= 1e-3 else f"{p:.0e}"


def short_names(names: list[str], id_name: str) -> dict[str, str]:
    """`llava_bench_coco_frost_3` -> `frost_3` when the ID set is `llava_bench_coco`;
    names that do not start with the ID name lose the longest `_`-ended prefix all the
    names share (`llava_bench_in_the_wild_hard_Korean` -> `in_the_wild_hard_Korean`)."""
    common = os.path.commonprefix(names) if len(names) > 1 else ""
    common = common[:common.rfind("_") + 1]
    out = {}
    for n in names:
        if n == id_name:
            out[n] = n
        elif n.startswith(id_name + "_"):
            out[n] = n[len(id_name) + 1:]
        elif common and len(n) > len(common):
            out[n] = n[len(common):]
        else:
            out[n] = n
    return out


def _table(title: str, notes: list[str] | None = None) -> Table:
    """Notes go beneath, one per line, and the table is at least as wide as the longest,
    so a note is never broken mid-phrase (rich wraps a caption at the table's width)."""
    notes = [n for n in notes or [] if n]
    return Table(title=title, title_justify="left", caption="\n".join(notes) or None, caption_justify="left",
                 box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),  # 2 spaces between columns
                 min_width=max(map(len, notes), default=None))


def shift_table(model: str, rows: list[dict], id_name: str, limit: int = LIMIT) -> Table:
    ood = [r for r in rows if r["scenario"] != id_name]
    ood.sort(key=lambda r: (r["emid"] is None, -(r["emid"] or 0), r["scenario"]))
    idr = next((r for r in rows if r["scenario"] == id_name), None)
    names = short_names([r["scenario"] for r in rows], id_name)
    has_ci = any(r["emid_lo"] is not None for r in ood)
    n_worst = max(1, min(WORST, len(ood) // 4))
    has_judge = any(r["rp_score"] is not None for r in rows)
    unscored = sum(1 for r in ood if r["emid"] is None)
    has_acc = any(r.get("accuracy") is not None for r in rows)
    unparsed = sum(r.get("n_unparsed") or 0 for r in rows)
    notes = [f"{len(ood) - limit} more shifts in per_shift.csv" if len(ood) > limit else None,
             f"acc: accuracy of the choice answers; {unparsed} matched no option (scored wrong)" if has_acc else None,
             (f"bold red: the {n_worst} largest EMID (worst shifts)" if n_worst > 1 else
              "bold red: the largest EMID (worst shift)") if ood else None,
             "no judge was run (RP, win empty)" if not has_judge else None,
             f"{unscored} without scores (no answers) at the end" if unscored else None]
    t = _table(f"{model} vs ID set {id_name}: worst EMID first", notes)
    # The only column that may shrink (numbers never do): cut with an ellipsis, not wrapped.
    t.add_column("shift", overflow="ellipsis", min_width=12)
    columns = ["EMI", "EMID"] + (["95% CI"] if has_ci else []) + ["UB"] + (["RP", "win"] if has_judge else []) \
        + (["acc"] if has_acc else [])
    for col in columns:
        t.add_column(col, justify="right", no_wrap=True)

    def cells(r, emid: str) -> list[str]:
        c = [_f(r["emi"]), emid]
        if has_ci:
            c.append(_ci(r["emid_lo"], r["emid_hi"]) if r["scenario"] != id_name else "")
        c.append(_f(r["emid_ub"]))
        if has_judge:
            c += [_f(r["rp_score"], 1), _f(r["win_rate"], 2)]
        if has_acc:
            c.append(_f(r.get("accuracy"), 2))
        return c

    if idr:
        t.add_row(f"{id_name} (ID)", *cells(idr, _f(idr["emid"])), style="dim", end_section=True)
    for i, r in enumerate(ood[:limit]):
        t.add_row(names[r["scenario"]], *cells(r, _f(r["emid"])), style="bold red" if i < n_worst else None)
    return t


def correlation_table(model: str, corr: list[dict]) -> Table:
    """One model's correlations: a section per family, p-values beside r and rho."""
    t = _table(f"{model}: correlations across scenarios (Pearson r, Spearman rho)",
               ["UB: EMID upper bound; sqrt-JSD sum: sqrt(JSD_v) + sqrt(JSD_t)", "slope: least-squares EMID on UB"])
    for col, just in (("family", "left"), ("metric vs", "left"), ("n", "right"), ("r", "right"), ("p", "right"),
                      ("rho", "right"), ("p", "right"), ("slope", "right")):
        t.add_column(col, justify=just, no_wrap=col != "metric vs", overflow="ellipsis")
    families = list(dict.fromkeys(c["family"] for c in corr))
    for fi, fam in enumerate(families):
        sel = [c for c in corr if c["family"] == fam]
        for i, c in enumerate(sel):
            pair = f"{LABELS.get(c['metric'], c['metric'])} vs {LABELS.get(c['against'], c['against'])}"
            last = i == len(sel) - 1 and fi < len(families) - 1
            if c["pearson_r"] is None:  # the reason, short; the full one is in correlations.csv
                why = "too few" if c["n"] < 3 else "constant"
                t.add_row(fam if i == 0 else "", pair, str(c["n"]), why, "", "", "", "", style="dim", end_section=last)
            else:
                t.add_row(fam if i == 0 else "", pair, str(c["n"]), f"{c['pearson_r']:+.2f}", _p(c["pearson_p"]),
                          f"{c['spearman_rho']:+.2f}", _p(c["spearman_p"]), _f(c.get("slope")), end_section=last)
    return t
