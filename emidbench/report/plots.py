"""The report's figures (PNG, one per file, deterministic bytes):

- severity.png   RP and EMI against shift severity per shift type, with CIs (Fig. 1)
- natural.png    RP and EMI per language for each domain split
- emid_vs_bound.png  EMID against its upper bound, a regression line per model (Fig. 3)
- emid_grid.png  EMID over the synthetic visual x text grid (heat map)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAVE = {"dpi": 120, "metadata": {"Software": None}}  # no version/timestamp: stable bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "svg.hashsalt": "emidbench"})
    return plt


def severity_plot(rows: list[dict], id_name: str, path: Path, model: str) -> Path | None:
    """Single-modality synthetic shifts: metric vs severity, severity 0 = the ID set."""
    plt = _plt()
    idr = next((r for r in rows if r["scenario"] == id_name), None)
    lines: dict[str, list] = {}
    for r in rows:
        if r["family"] != "synthetic" or r["modality"] not in ("visual", "text"):
            continue
        name = r["visual_shift"] or r["text_shift"]
        sev = r["visual_severity"] or r["text_severity"]
        lines.setdefault(name, []).append((sev, r))
    panels = [(m, lo, hi, label) for m, lo, hi, label in
              (("rp_score", "rp_lo", "rp_hi", "RP score (judge)"), ("emi", "emi_lo", "emi_hi", "EMI"))
              if any(r[m] is not None for _, pts in lines.items() for _, r in pts)]
    if not lines or not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (m, lo, hi, label) in zip(axes[0], panels):
        for name in sorted(lines):
            pts = sorted(lines[name], key=lambda p: p[0])
            if idr is not None and idr[m] is not None:
                pts = [(0, idr)] + pts
            xs = [p[0] for p in pts]
            ys = [p[1][m] for p in pts]
            ax.plot(xs, ys, marker="o", label=name)
            if all(p[1][lo] is not None for p in pts):
                ax.fill_between(xs, [p[1][lo] for p in pts], [p[1][hi] for p in pts], alpha=0.15)
        ax.set_xlabel("severity (0 = ID)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs shift severity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{model}: performance under synthetic shifts")
    fig.tight_layout()
    fig.savefig(path, **SAVE)
    plt.close(fig)
    return path


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
        ax.set_ylabel(label)
        ax.set_title(f"{label} per language and visual domain")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{model}: performance under natural shifts")
    fig.tight_layout()
    fig.savefig(path, **SAVE)
    plt.close(fig)
    return path


def bound_plot(per_model: dict[str, list[dict]], id_name: str, path: Path) -> Path | None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.8))
    drawn = False
    for model, rows in sorted(per_model.items()):
        pts = [(r["emid_ub"], r["emid"]) for r in rows
               if r["scenario"] != id_name and r["emid"] is not None and r["emid_ub"] is not None]
        if len(pts) < 2:
            continue
        x, y = np.array(pts).T
        sc = ax.scatter(x, y, s=18, alpha=0.8, label=model)
        if np.ptp(x) > 0:
            slope, icept = np.polyfit(x, y, 1)
            xx = np.linspace(x.min(), x.max(), 50)
            r = np.corrcoef(x, y)[0, 1] if np.ptp(y) > 0 else float("nan")
            ax.plot(xx, slope * xx + icept, color=sc.get_facecolor()[0], lw=1.5,
                    label=f"{model} fit (slope {slope:.3f}, r = {r:.2f})")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("EMID upper bound (scale-adjusted)")
    ax.set_ylabel("EMID")
    ax.set_title("EMID vs its upper bound, per shifted scenario")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, **SAVE)
    plt.close(fig)
    return path


def grid_plot(rows: list[dict], id_name: str, path: Path, model: str) -> Path | None:
    plt = _plt()
    syn = [r for r in rows if r["family"] in ("synthetic", "id")]
    vis = sorted({(r["visual_shift"], r["visual_severity"]) for r in syn if r["visual_shift"]}, key=str)
    txt = sorted({(r["text_shift"], r["text_severity"]) for r in syn if r["text_shift"]}, key=str)
    if not vis or not txt or not any(r["emid"] is not None for r in syn):
        return None
    vis, txt = [(None, None)] + vis, [(None, None)] + txt
    cell = {((r["visual_shift"], r["visual_severity"]), (r["text_shift"], r["text_severity"])): r["emid"] for r in syn}
    grid = np.array([[cell.get((v, t)) if cell.get((v, t)) is not None else np.nan for t in txt] for v in vis],
                    dtype=float)
    name = lambda s: "none" if s[0] is None else f"{s[0]}_{s[1]}"  # noqa: E731
    fig, ax = plt.subplots(figsize=(1.4 * len(txt) + 2.5, 0.55 * len(vis) + 1.8))
    lim = np.nanmax(np.abs(grid)) or 1.0
    im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(txt)), [name(t) for t in txt], rotation=30, ha="right")
    ax.set_yticks(range(len(vis)), [name(v) for v in vis])
    for i in range(len(vis)):
        for j in range(len(txt)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("text shift")
    ax.set_ylabel("visual shift")
    ax.set_title(f"{model}: EMID over the synthetic grid (red = worse than ID)")
    fig.colorbar(im, ax=ax, label="EMID")
    fig.tight_layout()
    fig.savefig(path, **SAVE)
    plt.close(fig)
    return path
