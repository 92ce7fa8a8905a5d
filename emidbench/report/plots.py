"""The report's figures. Each function returns a matplotlib Figure (None without data);
render() turns it into PNG bytes (the files) and SVG bytes (the page), both deterministic:

- severity.png   RP and EMI against severity, a panel per shift type, with CIs (Fig. 1)
- natural.png    RP and EMI per language for each domain split, with CIs
- emid_vs_bound.png  EMID against its upper bound, a regression line per model, y = x (Fig. 3)
- emid_grid.png  EMID over the synthetic visual x text grid (heat map)
- icl.png        choice runs with in-context-example scenarios (`<set>_icl<K>_<id|target>`):
                 accuracy against K per set and example source, K = 0 being `<set>` itself
                 (Zhang et al.'s ICE figure)
"""

from __future__ import annotations

import io
import math
import re

import numpy as np

SAVE = {"dpi": 120, "metadata": {"Software": None}}  # no version/timestamp: stable bytes
# SVG: no date, no software, no title; ids are salted hashes (svg.hashsalt), so stable too.
SAVE_SVG = {"metadata": {"Date": None, "Creator": None, "Format": None, "Type": None}}
FAMILY_MARKERS = {"synthetic": "o", "natural": "^", "custom": "s"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "svg.hashsalt": "emidbench"})
    return plt


def render(fig) -> tuple[bytes, bytes]:
    """(PNG bytes, SVG bytes) of a figure, then closed."""
    import matplotlib.pyplot as plt

    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", **SAVE)
    fig.savefig(svg, format="svg", **SAVE_SVG)
    plt.close(fig)
    return png.getvalue(), svg.getvalue()


def _colors(n: int) -> list:
    """Distinct colours for n lines: tab10 up to 10, tab20 beyond (ImageNet-C has 19)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _ci_err(rows: list[dict], m: str, lo: str, hi: str):
    """Error-bar half-widths (2 x n) when every row has its interval, else None."""
    if not rows or any(r[lo] is None or r[hi] is None for r in rows):
        return None
    return np.array([[max(r[m] - r[lo], 0.0) for r in rows], [max(r[hi] - r[m], 0.0) for r in rows]])


METRIC_PANELS = (("rp_score", "rp_lo", "rp_hi", "RP score (judge)"), ("emi", "emi_lo", "emi_hi", "EMI"))


def severity_plot(rows: list[dict], id_name: str, model: str):
    """Single-modality synthetic shifts: one panel per shift type and metric (a type's
    severities are its own scale: corruption levels 1-5 and sr's 4/7 are not comparable),
    x = the severities the run has, 0 = the ID set. Points, not lines: a few levels of
    one type are not a curve. The bootstrap CI as error bars when it was computed; the
    metric's rows share a y axis, so the types compare at a glance."""
    plt = _plt()
    idr = next((r for r in rows if r["scenario"] == id_name), None)
    types: dict[tuple[str, str], list] = {}
    for r in rows:
        if r["family"] != "synthetic" or r["modality"] not in ("visual", "text"):
            continue
        name = r["visual_shift"] or r["text_shift"]
        sev = r["visual_severity"] if r["modality"] == "visual" else r["text_severity"]
        if sev is not None:
            types.setdefault((r["modality"], name), []).append((sev, r))
    panels = [p for p in METRIC_PANELS if any(r[p[0]] is not None for pts in types.values() for _, r in pts)]
    if not types or not panels:
        return None
    keys = sorted(types, key=lambda k: (k[0] != "visual", k[1].lower()))
    ncols = min(4, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    row_h = 2.7 if nrows * len(panels) <= 4 else 2.2  # ImageNet-C's 19 types: 10 rows, still on a screen or two
    fig, axes = plt.subplots(nrows * len(panels), ncols, figsize=(max(7.0, 3.3 * ncols + 0.6),
                                                                  row_h * nrows * len(panels) + 0.9),
                             squeeze=False, sharey="row")
    colors = {"visual": "tab:blue", "text": "tab:orange"}
    band = False
    for pi, (m, lo, hi, label) in enumerate(panels):
        for ki, key in enumerate(keys):
            ax = axes[pi * nrows + ki // ncols][ki % ncols]
            modality, name = key
            pts = sorted(((sev, r) for sev, r in types[key] if r[m] is not None), key=lambda p: p[0])
            if idr is not None and idr[m] is not None:
                err = _ci_err([idr], m, lo, hi)
                ax.errorbar([0], [idr[m]], yerr=err, fmt="s", color="0.35", ms=6, capsize=3, label="ID (severity 0)")
            if pts:
                sel = [r for _, r in pts]
                err = _ci_err(sel, m, lo, hi)
                band = band or err is not None
                ax.errorbar([p[0] for p in pts], [r[m] for r in sel], yerr=err, fmt="o", color=colors[modality],
                            ms=6, capsize=3, label=f"{name}" + (" (95% CI)" if err is not None else ""))
            ticks = [0] + [p[0] for p in pts]
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_xlim(-0.6, max(ticks) + 0.6)
            ax.set_title(f"{name} ({modality})", fontsize=10)
            ax.set_xlabel(f"{name} severity", fontsize=9)
            if ki % ncols == 0:
                ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        for ki in range(len(keys), nrows * ncols):  # unused cells of the last row
            axes[pi * nrows + ki // ncols][ki % ncols].set_visible(False)
    fig.suptitle(f"{model}: single-modality synthetic shifts"
                 + ("\n(error bars: 95% bootstrap CI)" if band else ""), fontsize=11)
    fig.tight_layout()
    return fig


NATURAL_SPLITS = ("easy", "normal", "hard")  # ordinal: distance of the images from the ID set


def _domain_key(dom: str) -> tuple:
    """(rank, base domain, name): ID first (rank 0), then per domain easy < normal < hard
    (ranks 1-3; any other split 4)."""
    if dom == "ID":
        return (0, "", "")
    split = dom.rsplit("_", 1)[-1]
    base = dom[:-len(split) - 1] if split in NATURAL_SPLITS else dom
    return (1 + NATURAL_SPLITS.index(split) if split in NATURAL_SPLITS else 1 + len(NATURAL_SPLITS), base, dom)


def natural_plot(rows: list[dict], id_name: str, model: str):
    """Natural shifts: x = language (categories, no order: markers, no lines), one marker
    per visual domain split side by side, coloured in the splits' order (ID, easy, normal,
    hard: farther from ID = darker); bootstrap CIs as error bars when computed."""
    plt = _plt()
    nat = [r for r in rows if r["family"] in ("natural", "id")]
    langs, groups = [], {}
    for r in nat:
        lang = r["text_shift"] or "English"
        if lang not in langs:
            langs.append(lang)
        dom = r["visual_shift"] or "ID"
        groups.setdefault(dom, {})[lang] = r
    if len(langs) < 2 and len(groups) < 2:
        return None
    panels = [p for p in METRIC_PANELS if any(r[p[0]] is not None for r in nat)]
    if not panels:
        return None
    doms = sorted(groups, key=lambda d: (_domain_key(d)[1], _domain_key(d)[0], d))
    doms = sorted(doms, key=lambda d: _domain_key(d)[0] != 0)  # ID first, then per base domain by split
    # Ordinal colours by split (ID dark blue -> easy -> normal -> hard orange), whatever splits
    # this run has; a second base domain (a custom suite) gets another marker.
    cmap = plt.get_cmap("plasma")
    shades = [cmap((0.0, 0.35, 0.6, 0.8, 0.88)[_domain_key(d)[0]]) for d in doms]
    bases = list(dict.fromkeys(_domain_key(d)[1] for d in doms if d != "ID"))
    markers = ["o" if d == "ID" else "oDv^<>"[bases.index(_domain_key(d)[1]) % 6] for d in doms]
    # One panel above the other, the legend beside each: wide enough for 7 languages x 4
    # splits without the legend covering points.
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.5, 0.95 * len(langs) + 4.0), 3.4 * len(panels) + 1.0),
                             squeeze=False)
    x = np.arange(len(langs))
    width = min(0.8 / len(doms), 0.22)
    band = False
    for ax, (m, lo, hi, label) in zip(axes[:, 0], panels):
        for di, (dom, color, marker) in enumerate(zip(doms, shades, markers)):
            at = [(i, groups[dom][lang]) for i, lang in enumerate(langs)
                  if lang in groups[dom] and groups[dom][lang][m] is not None]
            if not at:
                continue
            sel = [r for _, r in at]
            err = _ci_err(sel, m, lo, hi)
            band = band or err is not None
            offset = (di - (len(doms) - 1) / 2) * width
            ax.errorbar([i + offset for i, _ in at], [r[m] for r in sel], yerr=err, fmt=marker, ms=6, capsize=2.5,
                        color=color, mec="0.2", mew=0.6, ecolor=color, label="ID images" if dom == "ID" else dom)
        ax.set_xticks(x, langs, rotation=30, ha="right")
        ax.set_xlim(-0.6, len(langs) - 0.4)
        for i in range(len(langs) - 1):  # separators: the languages are categories
            ax.axvline(i + 0.5, color="0.85", lw=0.8)
        ax.set_ylabel(label)
        ax.set_xlabel("question language")
        ax.set_title(f"{label} per language and visual domain", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, title="visual domain", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(f"{model}: performance under natural shifts" + ("\n(error bars: 95% bootstrap CI)" if band else ""),
                 fontsize=11)
    fig.tight_layout()
    return fig


def bound_plot(per_model: dict[str, list[dict]], id_name: str):
    """Figure 3: EMID against its upper bound UB per shifted scenario (colour = model,
    marker = family), each model's least-squares line over its own data range, and the
    line y = x: the bound holds for the points below it."""
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 6.0 + 0.15 * len(per_model)))
    models = sorted(per_model)
    families: set[str] = set()
    drawn, xs_all, ys_all = False, [], []
    for model, color in zip(models, _colors(len(models))):
        rows = [r for r in per_model[model]
                if r["scenario"] != id_name and r["emid"] is not None and r["emid_ub"] is not None]
        if len(rows) < 2:
            continue
        for fam, marker in FAMILY_MARKERS.items():
            sel = [r for r in rows if r["family"] == fam]
            if sel:
                families.add(fam)
                ax.scatter([r["emid_ub"] for r in sel], [r["emid"] for r in sel], s=24, alpha=0.8, color=color,
                           marker=marker, edgecolors="none")
        x = np.array([r["emid_ub"] for r in rows])
        y = np.array([r["emid"] for r in rows])
        xs_all += list(x)
        ys_all += list(y)
        label = f"{model} (n = {len(x)})"
        if np.ptp(x) > 0:
            slope, icept = np.polyfit(x, y, 1)
            xx = np.linspace(x.min(), x.max(), 50)  # the fit says nothing beyond the data
            ax.plot(xx, slope * xx + icept, color=color, lw=1.8)
            r = np.corrcoef(x, y)[0, 1] if np.ptp(y) > 0 else float("nan")
            label = f"{model}: slope {slope:.3f}, r = {r:.2f}, n = {len(x)}"
        ax.plot([], [], color=color, lw=1.8, marker="o", label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    # y = x over the plotted x range, without stretching the y axis to it: when every
    # point is far below the bound the line is out of view and the legend says where it is.
    ax.margins(x=0.05, y=0.08)
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    ax.plot(xlim, xlim, ls="--", color="0.3", lw=1.2)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    above = sum(1 for a, b in zip(xs_all, ys_all) if b > a)
    where = "" if ylim[1] >= xlim[0] else ", above this plot"
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], ls="--", color="0.3", lw=1.2))
    labels.append(f"y = x (EMID = UB{where}): {len(xs_all) - above} of {len(xs_all)} points below")
    for fam in (f for f in FAMILY_MARKERS if f in families):
        handles.append(Line2D([], [], ls="", marker=FAMILY_MARKERS[fam], color="0.4"))
        labels.append(f"{fam} shifts")
    # Below the axes: a legend inside would cover points wherever they are.
    ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2 if len(labels) > 3
              else 1, frameon=False)
    ax.set_xlabel("EMID upper bound UB = √JSD$_v$ + √JSD$_t$ + JSD$_{y,ID}^{1/4}$ + JSD$_{y,OOD}^{1/4}$")
    ax.set_ylabel("EMID (higher = worse than ID)")
    ax.set_title("EMID vs its upper bound, one point per shifted scenario")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _shift_key(s: tuple) -> tuple:
    """(name, severity) in reading order: none first, then by name, then by severity."""
    name, sev = s
    return (name is not None, (name or "").lower(), sev is None, sev if isinstance(sev, (int, float)) else 0)


def grid_plot(rows: list[dict], id_name: str, model: str):
    plt = _plt()
    syn = [r for r in rows if r["family"] in ("synthetic", "id")]
    vis = sorted({(r["visual_shift"], r["visual_severity"]) for r in syn if r["visual_shift"]}, key=_shift_key)
    txt = sorted({(r["text_shift"], r["text_severity"]) for r in syn if r["text_shift"]}, key=_shift_key)
    if not vis or not txt or not any(r["emid"] is not None for r in syn):
        return None
    vis, txt = [(None, None)] + vis, [(None, None)] + txt
    cell = {((r["visual_shift"], r["visual_severity"]), (r["text_shift"], r["text_severity"])): r["emid"] for r in syn}
    grid = np.array([[cell.get((v, t)) if cell.get((v, t)) is not None else np.nan for t in txt] for v in vis],
                    dtype=float)
    name = lambda s: "none" if s[0] is None else s[0] if s[1] is None else f"{s[0]} {s[1]}"  # noqa: E731
    # Wide enough for the title however small the grid is.
    fig, ax = plt.subplots(figsize=(max(7.0, 1.4 * len(txt) + 2.5), 0.55 * len(vis) + 2.2))
    lim = float(np.nanmax(np.abs(grid))) or 1.0
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.8")  # sets this run did not make: grey
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(txt)), [name(t) for t in txt], rotation=30, ha="right")
    ax.set_yticks(range(len(vis)), [name(v) for v in vis])
    for i in range(len(vis)):
        for j in range(len(txt)):
            if i == 0 and j == 0:
                ax.text(j, i, "ID set\n(0 by definition)", ha="center", va="center", fontsize=7, color="0.25")
            elif np.isnan(grid[i, j]):
                ax.text(j, i, "not run", ha="center", va="center", fontsize=7, color="0.35")
            else:
                # White on the dark ends of the colour map, black elsewhere: readable in every cell.
                dark = abs(grid[i, j]) > 0.6 * lim
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_xlabel("text shift")
    ax.set_ylabel("visual shift")
    ax.set_title(f"{model}: EMID over the synthetic grid\n(red = worse than ID, blue = better)")
    fig.colorbar(im, ax=ax, label="EMID")
    fig.tight_layout()
    return fig


ICL_NAME = re.compile(r"^(?P<base>.+)_icl(?P<k>\d+)_(?P<source>id|target)$")
ICL_SOURCES = {"target": ("-", "examples from the target domain"), "id": ("--", "examples from the ID domain")}


def icl_curves(rows: list[dict]) -> dict[tuple[str, str], list[tuple[int, dict]]]:
    """{(set, source): [(K, row), ...] by K} of the scenarios named <set>_icl<K>_<source>
    that have an accuracy, each starting at K = 0 with <set> itself when it has one."""
    by_name = {r["scenario"]: r for r in rows}
    curves: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for r in rows:
        m = ICL_NAME.match(r["scenario"])
        if m and r.get("accuracy") is not None:
            curves.setdefault((m["base"], m["source"]), []).append((int(m["k"]), r))
    for (base, _), pts in curves.items():
        zero = by_name.get(base)
        if zero is not None and zero.get("accuracy") is not None and all(k != 0 for k, _ in pts):
            pts.append((0, zero))
        pts.sort(key=lambda p: p[0])
    return dict(sorted(curves.items()))


def icl_plot(rows: list[dict], id_name: str, model: str):
    """Accuracy against the number of in-context examples, a line per set and source."""
    curves = icl_curves(rows)
    if not curves:
        return None
    plt = _plt()
    bases = sorted({b for b, _ in curves})
    color = dict(zip(bases, _colors(len(bases))))
    # the legend beside the axes: inside, it covers points (a line per domain and source)
    fig, ax = plt.subplots(figsize=(8.6, 4.2))
    band = False
    for (base, source), pts in curves.items():
        sel = [r for _, r in pts]
        err = _ci_err(sel, "accuracy", "accuracy_lo", "accuracy_hi")
        band = band or err is not None
        style, what = ICL_SOURCES[source]
        ax.errorbar([k for k, _ in pts], [r["accuracy"] for r in sel], yerr=err, fmt="o", linestyle=style,
                    color=color[base], ms=5, capsize=3, label=f"{base}, {what}")
    chance = [r["chance"] for pts in curves.values() for _, r in pts if r.get("chance") is not None]
    if chance:
        ax.axhline(float(np.mean(chance)), color="0.5", linestyle=":", linewidth=1, label="chance")
    ks = sorted({k for pts in curves.values() for k, _ in pts})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("in-context examples (K)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(f"{model}: accuracy with in-context examples" + ("\n(error bars: 95% bootstrap CI)" if band else ""),
                 fontsize=11)
    fig.tight_layout()
    return fig
