"""The report's figures (PNG, one per file, deterministic bytes):

- severity.png   RP and EMI against shift severity per shift type, with CIs (Fig. 1)
- natural.png    RP and EMI per language for each domain split
- emid_vs_bound.png  EMID against its upper bound, a regression line per model (Fig. 3)
- emid_grid.png  EMID over the synthetic visual x text grid (heat map)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from emidbench.common.io import write_if_changed

SAVE = {"dpi": 120, "metadata": {"Software": None}}  # no version/timestamp: stable bytes
FAMILY_MARKERS = {"synthetic": "o", "natural": "^", "custom": "s"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "svg.hashsalt": "emidbench"})
    return plt


def _save(fig, path: Path) -> Path:
    """PNG bytes written atomically (a killed report leaves the old figure or the new),
    and only when they differ from the file's: a rerun on the same scores touches nothing."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", **SAVE)
    plt.close(fig)
    write_if_changed(Path(path), buf.getvalue())
    return Path(path)


def _colors(n: int) -> list:
    """Distinct colours for n lines: tab10 up to 10, tab20 beyond (ImageNet-C has 19)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def severity_plot(rows: list[dict], id_name: str, path: Path, model: str) -> Path | None:
    """Single-modality synthetic shifts: metric vs severity per shift type (x sorted by
    severity, severity 0 = the ID set), the bootstrap CI as a band when it was computed."""
    plt = _plt()
    idr = next((r for r in rows if r["scenario"] == id_name), None)
    lines: dict[str, list] = {}
    for r in rows:
        if r["family"] != "synthetic" or r["modality"] not in ("visual", "text"):
            continue
        name = r["visual_shift"] or r["text_shift"]
        sev = r["visual_severity"] if r["modality"] == "visual" else r["text_severity"]
        if sev is not None:
            lines.setdefault(name, []).append((sev, r))
    panels = [(m, lo, hi, label) for m, lo, hi, label in
              (("rp_score", "rp_lo", "rp_hi", "RP score (judge)"), ("emi", "emi_lo", "emi_hi", "EMI"))
              if any(r[m] is not None for pts in lines.values() for _, r in pts)]
    if not lines or not panels:
        return None
    names = sorted(lines, key=str.lower)
    outside = len(names) > 6  # a long legend would cover the lines
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + (2.2 if outside else 0), 4.2),
                             squeeze=False)
    for ax, (m, lo, hi, label) in zip(axes[0], panels):
        for name, color in zip(names, _colors(len(names))):
            pts = sorted(((sev, r) for sev, r in lines[name] if r[m] is not None), key=lambda p: p[0])
            if idr is not None and idr[m] is not None:
                pts = [(0, idr)] + pts
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ax.plot(xs, [p[1][m] for p in pts], marker="o", color=color, label=name)
            if all(p[1][lo] is not None and p[1][hi] is not None for p in pts):
                ax.fill_between(xs, [p[1][lo] for p in pts], [p[1][hi] for p in pts], color=color, alpha=0.12,
                                lw=0)
        ax.set_xlabel("shift severity (0 = ID)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs shift severity")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if outside:
        fig.legend(handles, labels, fontsize=8, loc="center right", title="shift", title_fontsize=8)
    else:
        axes[0][-1].legend(handles, labels, fontsize=8, title="shift", title_fontsize=8)
    band = any(r[lo] is not None for pts in lines.values() for _, r in pts for _, lo, _, _ in panels)
    fig.suptitle(f"{model}: performance under synthetic shifts" + (" (bands: 95% bootstrap CI)" if band else ""))
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / fig.get_figwidth(), 1) if outside else None)
    return _save(fig, path)


def natural_plot(rows: list[dict], id_name: str, path: Path, model: str) -> Path | None:
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
    panels = [(m, label) for m, label in (("rp_score", "RP score (judge)"), ("emi", "EMI"))
              if any(r[m] is not None for r in nat)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    x = np.arange(len(langs))
    for ax, (m, label) in zip(axes[0], panels):
        for dom in sorted(groups, key=lambda d: (d != "ID", d)):
            ys = [groups[dom].get(lang, {}).get(m) for lang in langs]
            ax.plot(x, [np.nan if y is None else y for y in ys], marker="o", label=dom)
        ax.set_xticks(x, langs, rotation=30, ha="right")
        ax.set_xlim(-0.3, len(langs) - 0.7)  # no point on the frame
        ax.set_ylabel(label)
        ax.set_title(f"{label} per language and visual domain")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{model}: performance under natural shifts")
    fig.tight_layout()
    return _save(fig, path)


def bound_plot(per_model: dict[str, list[dict]], id_name: str, path: Path) -> Path | None:
    """Figure 3: EMID against its upper bound per shifted scenario (colour = model,
    marker = family), with each model's least-squares line."""
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7, 5))
    models = sorted(per_model)
    families: set[str] = set()
    drawn = False
    for model, color in zip(models, _colors(len(models))):
        rows = [r for r in per_model[model]
                if r["scenario"] != id_name and r["emid"] is not None and r["emid_ub"] is not None]
        if len(rows) < 2:
            continue
        for fam, marker in FAMILY_MARKERS.items():
            sel = [r for r in rows if r["family"] == fam]
            if sel:
                families.add(fam)
                ax.scatter([r["emid_ub"] for r in sel], [r["emid"] for r in sel], s=22, alpha=0.75, color=color,
                           marker=marker, edgecolors="none")
        x = np.array([r["emid_ub"] for r in rows])
        y = np.array([r["emid"] for r in rows])
        label = model
        if np.ptp(x) > 0:
            slope, icept = np.polyfit(x, y, 1)
            xx = np.linspace(x.min(), x.max(), 50)
            ax.plot(xx, slope * xx + icept, color=color, lw=1.8)
            r = np.corrcoef(x, y)[0, 1] if np.ptp(y) > 0 else float("nan")
            label = f"{model}: slope {slope:.3f}, r = {r:.2f}, n = {len(x)}"
        ax.plot([], [], color=color, lw=1.8, marker="o", label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    handles, labels = ax.get_legend_handles_labels()
    for fam in (f for f in FAMILY_MARKERS if f in families):
        handles.append(Line2D([], [], ls="", marker=FAMILY_MARKERS[fam], color="0.4"))
        labels.append(f"{fam} shifts")
    ax.legend(handles, labels, fontsize=8, loc="best")
    ax.set_xlabel("EMID upper bound (scale-adjusted)")
    ax.set_ylabel("EMID (higher = worse than ID)")
    ax.set_title("EMID vs its upper bound, one point per shifted scenario")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _shift_key(s: tuple) -> tuple:
    """(name, severity) in reading order: none first, then by name, then by severity."""
    name, sev = s
    return (name is not None, (name or "").lower(), sev is None, sev if isinstance(sev, (int, float)) else 0)


def grid_plot(rows: list[dict], id_name: str, path: Path, model: str) -> Path | None:
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
            if np.isnan(grid[i, j]):
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
    return _save(fig, path)
