"""RUN/report/index.html: the report as one self-contained page.

One HTML file with its styles, script, figures (SVG data URIs) and example thumbnails
(downscaled JPEG data URIs) inside: it opens from the file system, needs no network
and prints. Same run, same bytes: nothing on it depends on the clock or on dict order.

Sections: a summary strip per model; per model, what scored it (embedder, estimator,
judge, with proxies marked), the per-shift table (every per_shift.csv column the run
computed, CIs as ranges, sortable and filterable, the worst rows marked), its
correlations and figures; the models side by side when several were scored; the
examples (examples.py).
"""

from __future__ import annotations

import base64
import html
import math
from importlib import resources
from pathlib import Path

from emidbench.common.io import cell
from emidbench.embedders.paper import TEXT as PAPER_TEXT
from emidbench.embedders.paper import VISION as PAPER_VISION
from emidbench.report import examples as ex
from emidbench.report.correlations import COVARIATE
from emidbench.report.tables import per_shift_columns

WORST = 5  # rows marked worst by EMID: at most this many, and at most a quarter of the shifts (as the terminal)
CI = {"emi": ("emi_lo", "emi_hi"), "emid": ("emid_lo", "emid_hi"), "rp_score": ("rp_lo", "rp_hi"),
      "win_rate": ("win_lo", "win_hi"), "accuracy": ("accuracy_lo", "accuracy_hi")}
TEXT = ("scenario", "family", "modality", "visual_shift", "text_shift")
DIGITS = {"rp_score": 1, "rp_lo": 1, "rp_hi": 1, "win_rate": 2, "win_lo": 2, "win_hi": 2, "accuracy": 3,
          "accuracy_lo": 3, "accuracy_hi": 3, "macro_f1": 3, "chance": 3}
COLUMN_HELP = {
    "n": "questions scored", "emi": "effective mutual information (higher = better)",
    "emid": "EMI(ID) - EMI(this set): > 0 = worse than ID",
    "emid_ub": "EMID upper bound (the reference code's EMID_UB)",
    "emid_true_ub": "the true-bound estimate with the entropy scaler", "jsd_v": "JSD of ID vs these images",
    "jsd_t": "JSD of ID vs these questions", "jsd_y_id": "JSD of model vs reference answers on ID",
    "jsd_y_ood": "JSD of model vs reference answers here",
    "rp_score": "judge's relative preference, 100 = as good as the reference",
    "win_rate": "share of items the judge scored above the reference (ties half)",
    "judge_failed": "items whose judgment failed (left out of RP and win rate)",
    "accuracy": "choice scenarios: share of answers read as the correct option (unparsed = wrong)",
    "macro_f1": "choice scenarios: F1 per class, averaged", "n_unparsed": "choice answers that matched no option",
    "chance": "choice scenarios: accuracy of a uniform random pick (1/#options)"}
LABELS = {"emi": "EMI", "emid": "EMID", "emid_ub": "UB", "rp_score": "RP", "win_rate": "win", "accuracy": "accuracy",
          "jsd_v": "JSD_v",
          "jsd_t": "JSD_t", COVARIATE: "sqrt(JSD_v)+sqrt(JSD_t)"}
# The paper's encoders (the paper embedder's defaults), the text one also under its hub alias.
PUBLISHED_ENCODERS = (PAPER_VISION, (PAPER_TEXT, f"FacebookAI/{PAPER_TEXT}"))


def esc(v) -> str:
    return html.escape("" if v is None else str(v))


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return f"{(v + 0.0) if round(v, digits) else 0.0:.{digits}f}"  # never "-0.000"


def _p(p) -> str:
    return "" if p is None else "<1e-4" if p < 1e-4 else f"{p:.4f}" if p >= 1e-3 else f"{p:.0e}"


def _asset(name: str) -> str:
    return resources.files("emidbench.report").joinpath(name).read_text(encoding="utf-8")


def svg_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


# --------------------------------------------------------------------------- labels


def embedder_label(info: dict) -> tuple[str, str]:
    """(description, badge kind: proxy | published | other) of what embedded the run."""
    emb = info.get("embedder") or {}
    name = emb.get("name") or "?"
    if name == "offline" or emb.get("proxy"):
        return f"{name} (hashed features)", "proxy"
    vision, text = emb.get("vision_encoder"), emb.get("text_encoder")
    desc = f"{name}: {vision or '?'} + {text or '(images only)'}"
    from emidbench.assets import BUNDLED

    if vision in BUNDLED or text in BUNDLED:
        return desc + " (bundled toy encoders, trained on the mini world only)", "proxy"
    if vision == PUBLISHED_ENCODERS[0] and text in PUBLISHED_ENCODERS[1]:
        return desc, "published"
    return desc + " (not the paper's encoders)", "other"


def judge_label(info: dict) -> tuple[str, str] | None:
    judge = info.get("judge")
    if not judge:
        return None
    spec = judge.get("spec") or "?"
    extra = ", both orders averaged" if judge.get("debias") else ""
    if judge.get("proxy"):
        return f"{spec} (token-F1 overlap with the reference, no model{extra})", "proxy"
    return f"{spec} (prompt {judge.get('prompt_version', '?')}{extra})", ""  # a model judge: no badge


def estimator_label(info: dict) -> str:
    est = info.get("estimator") or {}
    if est.get("kind") == "fit":
        ll = est.get("val_loglik")
        return (f"CLUB fitted on this run ({est.get('n_pairs', '?')} pairs"
                + (f", validation log-likelihood {ll:.4g}" if isinstance(ll, (int, float)) else "") + ")")
    if est.get("kind") == "path":
        return f"CLUB loaded from {Path(str(est.get('path'))).name}"
    return esc(est.get("kind") or "not recorded")


def badge(kind: str) -> str:
    if not kind:
        return ""
    text = {"proxy": "PROXY", "published": "as published", "other": "not the paper's"}[kind]
    return f'<span class="badge {kind}">{text}</span>'


# --------------------------------------------------------------------------- the page


def build_page(*, run_name: str, manifest, id_name: str, models: list[str], per_model: dict[str, list[dict]],
               corr: dict[str, list[dict]], summary: list[dict], infos: dict[str, dict],
               figures: dict[str, list[tuple[str, str, bytes]]], galleries) -> str:
    """The whole page as a string. figures: model (or "" for the all-models figures) ->
    [(title, caption, svg bytes)]; galleries: examples.build(...)."""
    out: list[str] = []
    w = out.append
    w("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      # Nothing loads from anywhere else (CSP says so to the browser, too).
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
      f"<title>emidbench report: {esc(run_name)}</title>\n<style>\n{_asset('page.css')}</style>\n</head>\n"
      "<body>\n<main>\n")
    n_shifts = sum(1 for s in manifest.scenarios if s.name != id_name)
    w('<header class="top">\n<h1>emidbench report</h1>\n'
      f'<p class="muted">run <code>{esc(run_name)}</code> · benchmark <code>{esc(manifest.benchmark)}</code> · '
      f'suite <code>{esc(manifest.suite)}</code> · ID set <code>{esc(id_name)}</code> · {n_shifts} shifted sets · '
      f'model{"s" if len(models) > 1 else ""}: {", ".join(f"<code>{esc(m)}</code>" for m in models)}</p>\n')
    toc = [("summary", "Summary")] + [(f"model-{i}", f"{m}") for i, m in enumerate(models)]
    if len(models) > 1:
        toc.append(("compare", "Models compared"))
    if galleries:
        toc.append(("examples", "Examples"))
    toc.append(("notes", "How to read"))
    w('<nav class="toc">' + "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in toc) + "</nav>\n</header>\n")

    proxies = sorted({what for m in models for what, kind in _parts(infos[m]) if kind == "proxy"})
    if proxies:
        w('<div class="banner" id="proxy-banner"><strong>Proxy measurements.</strong> This run used '
          + " and ".join(proxies) + " marked PROXY below: its numbers demonstrate the pipeline and compare runs "
          "made the same way; they are not comparable with the paper's or with LLaVA-Bench results.</div>\n")

    w('<section id="summary">\n<h2>Summary</h2>\n')
    for m in models:
        w(_strip(m, per_model[m], corr[m], next(s for s in summary if s["model"] == m), infos[m], id_name))
    w("</section>\n")

    for i, m in enumerate(models):
        w(f'<section id="model-{i}" class="model">\n<h2>{esc(m)}</h2>\n')
        w(_provenance(infos[m], per_model[m], id_name))
        w(_shift_table(f"shifts-{i}", per_model[m], id_name))
        w(_corr_table(corr[m]))
        figs = figures.get(m) or []
        if figs:
            w('<h3>Figures</h3>\n<div class="figs">\n' + "".join(_figure(*f) for f in figs) + "</div>\n")
        w("</section>\n")

    if len(models) > 1:
        w(_comparison(models, per_model, id_name, figures.get("") or [], infos))
    if galleries:
        w(_examples(galleries, models, id_name))
    w(_notes())
    w(f"</main>\n<script>\n{_asset('page.js')}</script>\n</body>\n</html>\n")
    return "".join(out)


def _parts(info: dict) -> list[tuple[str, str]]:
    """(what, badge kind) of the embedder and the judge, named as the banner says them."""
    emb = info.get("embedder") or {}
    what = f"the {emb.get('name', '?')} embedder"
    if emb.get("name") == "paper" and emb.get("vision_encoder"):
        what = f"the {emb.get('vision_encoder')} + {emb.get('text_encoder') or '(no text)'} encoders"
    parts = [(what, embedder_label(info)[1])]
    j = judge_label(info)
    if j:
        parts.append((f"the {(info.get('judge') or {}).get('spec', '?')} judge", j[1]))
    return parts


def _tile(key: str, value: str, sub: str = "") -> str:
    return (f'<div class="tile"><div class="k">{key}</div><div class="v">{value}</div>'
            + (f'<div class="s">{sub}</div>' if sub else "") + "</div>")


def _corr_of(corr: list[dict], metric: str, against: str) -> dict | None:
    return next((c for c in corr if c["family"] == "all" and c["metric"] == metric and c["against"] == against), None)


def _corr_text(c: dict | None) -> tuple[str, str]:
    if c is None:
        return "—", ""
    if c.get("pearson_r") is None:
        return "—", f"n = {c['n']}: {esc(c.get('note') or 'not computed')}"
    sub = f"p = {_p(c['pearson_p'])}, n = {c['n']}, Spearman ρ = {c['spearman_rho']:+.2f}"
    if c.get("slope") is not None:
        sub += f", slope {c['slope']:.3f}"
    return f"r = {c['pearson_r']:+.2f}", sub


def _strip(model: str, rows: list[dict], corr: list[dict], summ: dict, info: dict, id_name: str) -> str:
    by = {r["scenario"]: r for r in rows}
    idr = by[id_name]
    judged = any(r["rp_score"] is not None for r in rows)
    tiles = [_tile("ID set", esc(id_name), f"n = {esc(idr['n'])}"), _tile("ID EMI", fmt(idr["emi"]),
                                                                         _ci_text(idr, "emi"))]
    if judged:
        tiles.append(_tile("ID RP (judge)", fmt(idr["rp_score"], 1), _ci_text(idr, "rp_score", 1)))
        tiles.append(_tile("ID win rate", fmt(idr["win_rate"], 2), _ci_text(idr, "win_rate", 2)))
    from emidbench.report.terminal import short_names

    short = short_names([r["scenario"] for r in rows], id_name)

    def name(n):
        return f'<span title="{esc(n)}">{esc(short[n])}</span>'

    w = summ.get("worst_by_emid")
    if w:
        tiles.append(_tile("worst shift by EMID", name(w), f"EMID {fmt(by[w]['emid'])} " + _ci_text(by[w], "emid")))
    w = summ.get("worst_by_rp")
    if w:
        tiles.append(_tile("worst shift by RP", name(w), f"RP {fmt(by[w]['rp_score'], 1)} "
                           + _ci_text(by[w], "rp_score", 1)))
    if judged:
        tiles.append(_tile("EMI vs RP (all sets)", *_corr_text(_corr_of(corr, "emi", "rp_score"))))
    if idr.get("accuracy") is not None:
        tiles.append(_tile("ID accuracy", fmt(idr["accuracy"]), _ci_text(idr, "accuracy")
                           + f" chance {fmt(idr.get('chance'))}"))
        tiles.append(_tile("EMI vs accuracy (all sets)", *_corr_text(_corr_of(corr, "emi", "accuracy"))))
    tiles.append(_tile("EMID vs UB (shifted sets)", *_corr_text(_corr_of(corr, "emid", "emid_ub"))))
    counts = (info.get("counts") or {})
    miss, failed = counts.get("missing"), counts.get("failed")
    jf = sum(r["judge_failed"] or 0 for r in rows)
    sub = []
    if judged:
        sub.append(f"{jf} failed judgment{'s' if jf != 1 else ''}")
    tiles.append(_tile("answers left out", f"{miss if miss is not None else '?'} missing · "
                       f"{failed if failed is not None else '?'} failed", ", ".join(sub)))
    return f'<h3>{esc(model)}</h3>\n<div class="strip" data-model="{esc(model)}">' + "".join(tiles) + "</div>\n"


def _ci_text(row: dict, metric: str, digits: int = 3) -> str:
    lo, hi = CI[metric]
    if row.get(lo) is None or row.get(hi) is None:
        return ""
    return f"95% CI [{fmt(row[lo], digits)}, {fmt(row[hi], digits)}]"


def _provenance(info: dict, rows: list[dict], id_name: str) -> str:
    emb, kind = embedder_label(info)
    items = [("embedder", f"{esc(emb)} {badge(kind)}"), ("estimator", esc(estimator_label(info)))]
    j = judge_label(info)
    items.append(("judge", f"{esc(j[0])} {badge(j[1])}" if j else "none: RP and win-rate columns are absent"))
    settings = info.get("settings") or {}
    b = settings.get("bootstrap") or 0
    items.append(("intervals", f"95% percentile bootstrap, {b} resamples of items (estimator not refitted)" if b
                  else "none (score without --bootstrap): CI columns are absent"))
    if settings.get("seed") is not None:
        items.append(("seed", esc(settings["seed"])))
    gen = info.get("generation") or []
    if len(gen) > 1:
        items.append(("answers", '<span class="bad">generated with different settings: '
                      + "; ".join(esc(g.get("settings") or "(not recorded)") + f" ({len(g.get('scenarios', []))} sets)"
                                  for g in gen) + "</span>"))
    unscored = [r["scenario"] for r in rows if r["scenario"] != id_name and r["emid"] is None]
    if unscored:
        items.append(("not scored", f'<span class="bad">{len(unscored)} set(s) without answers: '
                      + esc(", ".join(unscored[:10])) + (" …" if len(unscored) > 10 else "") + "</span>"))
    if not info:
        items.append(("record", '<span class="bad">score.json missing: how this model was scored is unknown</span>'))
    return '<dl class="prov">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>\n"


def table_columns(rows: list[dict]) -> list[str]:
    """The per_shift.csv columns this table shows: those with a value in some row (a
    column the run did not compute is left out, not shown empty); a CI's lo/hi become
    one range column after their metric."""
    have = [c for c in per_shift_columns(rows) if c == "scenario" or any(r.get(c) is not None for r in rows)]
    return have


def worst_rows(rows: list[dict], id_name: str) -> list[str]:
    ood = [r for r in rows if r["scenario"] != id_name and r["emid"] is not None]
    ood.sort(key=lambda r: (-r["emid"], r["scenario"]))
    n = max(1, min(WORST, len(ood) // 4)) if ood else 0
    return [r["scenario"] for r in ood[:n]]


def _shift_table(table_id: str, rows: list[dict], id_name: str) -> str:
    cols = table_columns(rows)
    worst = worst_rows(rows, id_name)
    head, out = [], []
    los = {lo for lo, _ in CI.values()}
    his = {hi for _, hi in CI.values()}
    shown = []
    for c in cols:
        if c in his:
            continue
        if c in los:
            metric = next(m for m, (lo, _) in CI.items() if lo == c)
            shown.append(("ci", metric))
            head.append(f'<th class="sortable" data-type="num" data-col="{c}" title="95% bootstrap interval of '
                        f'{metric} (sorts by its lower end)">{metric.replace("_", "_<wbr>")} 95% CI</th>')
            continue
        shown.append(("col", c))
        cls = "sortable t" if c in TEXT else "sortable"
        typ = "text" if c in TEXT else "num"
        tip = f' title="{esc(COLUMN_HELP[c])}"' if c in COLUMN_HELP else ""
        # <wbr>: a narrow column's name wraps at its underscores, never inside a word
        head.append(f'<th class="{cls}" data-type="{typ}" data-col="{c}"{tip}>{esc(c).replace("_", "_<wbr>")}</th>')
    for r in rows:
        cls = "id-row" if r["scenario"] == id_name else "worst" if r["scenario"] in worst else ""
        name = " ".join(str(r.get(k) or "") for k in ("scenario", "visual_shift", "text_shift")).lower()
        tds = []
        for kind, c in shown:
            if kind == "ci":
                lo, hi = CI[c]
                d = DIGITS.get(c, 3)
                text = "" if r.get(lo) is None or r.get(hi) is None else f"[{fmt(r[lo], d)}, {fmt(r[hi], d)}]"
                tds.append(f'<td class="ci" data-col="{lo}" data-v="{cell(r.get(lo))}" data-lo="{cell(r.get(lo))}" '
                           f'data-hi="{cell(r.get(hi))}">{text}</td>')
            elif c in TEXT:
                label = esc(r.get(c))
                if c == "scenario" and r["scenario"] in worst:
                    label = f'<span class="mark" title="among the largest EMID">▲</span> {label}'
                elif c == "scenario" and r["scenario"] == id_name:
                    label += " (ID)"
                tds.append(f'<td class="t" data-col="{c}" data-v="{esc(cell(r.get(c)))}">{label}</td>')
            else:
                v = r.get(c)
                text = fmt(v, DIGITS.get(c, 3)) if isinstance(v, float) else esc(cell(v))
                tds.append(f'<td data-col="{c}" data-v="{cell(v)}">{text}</td>')
        out.append(f'<tr class="{cls}" data-scenario="{esc(r["scenario"])}" data-family="{esc(r["family"])}" '
                   f'data-modality="{esc(r["modality"])}" data-name="{esc(name)}">' + "".join(tds) + "</tr>")
    families = sorted({r["family"] for r in rows})
    modalities = sorted({r["modality"] for r in rows})

    def select(key, values):
        return (f'<label>{key} <select data-filter="{key}"><option value="">all</option>'
                + "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values) + "</select></label>")

    note = (f'<p class="muted"><span class="mark">▲</span> the {len(worst)} largest EMID (worst shifts); '
            "click a column header to sort; hover a header for its meaning. All digits are in "
            "<code>per_shift.csv</code>.</p>\n") if worst else ""
    return ("<h3>Per-shift results</h3>\n" + note
            + f'<div class="controls" data-for="{table_id}">{select("family", families)}'
            f'{select("modality", modalities)}<label>shift name <input type="search" data-filter="name" '
            'placeholder="e.g. frost, German"></label><span class="count"></span></div>\n'
            f'<div class="table-wrap"><table id="{table_id}" class="data sortable-table">'
            f"<thead><tr>{''.join(head)}</tr></thead>\n<tbody>\n" + "\n".join(out) + "\n</tbody></table></div>\n")


def _corr_table(corr: list[dict]) -> str:
    rows = []
    for c in corr:
        pair = f"{LABELS.get(c['metric'], c['metric'])} vs {LABELS.get(c['against'], c['against'])}"
        if c["pearson_r"] is None:
            rows.append(f'<tr><td>{esc(c["family"])}</td><td>{esc(pair)}</td><td>{c["n"]}</td>'
                        f'<td colspan="5" class="muted" style="text-align:left">{esc(c.get("note"))}</td></tr>')
        else:
            rows.append(f'<tr><td>{esc(c["family"])}</td><td>{esc(pair)}</td><td>{c["n"]}</td>'
                        f"<td>{c['pearson_r']:+.2f}</td><td>{_p(c['pearson_p'])}</td>"
                        f"<td>{c['spearman_rho']:+.2f}</td><td>{_p(c['spearman_p'])}</td>"
                        f"<td>{fmt(c.get('slope'))}</td></tr>")
    return ('<h3>Correlations across scenarios</h3>\n<p class="muted">EMI correlations include the ID set; '
            "EMID ones leave it out (EMID is 0 there). Slope: least-squares EMID on UB.</p>\n"
            '<div class="table-wrap" style="max-height:none"><table class="corr"><thead><tr><th>family</th>'
            "<th>metric vs</th><th>n</th><th>Pearson r</th><th>p</th><th>Spearman ρ</th><th>p</th><th>slope</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>\n")


def _figure(title: str, caption: str, svg: bytes) -> str:
    return (f'<figure><img src="{svg_uri(svg)}" alt="{esc(title)}">'
            f"<figcaption><strong>{esc(title)}.</strong> {esc(caption)}</figcaption></figure>\n")


def heat_color(v: float | None, lim: float) -> str:
    """A diverging colour, blue (< 0) - white - red (> 0), light enough for dark text;
    one scale for every model's column."""
    if v is None or not lim:
        return ""
    t = max(-1.0, min(1.0, v / lim))
    end = (178, 24, 43) if t > 0 else (33, 102, 172)
    a = abs(t) * 0.6
    rgb = tuple(round(255 + (e - 255) * a) for e in end)
    return f"background:#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}"


def _comparison(models: list[str], per_model: dict, id_name: str, figs, infos: dict) -> str:
    names = [r["scenario"] for r in per_model[models[0]]]
    by = {m: {r["scenario"]: r for r in per_model[m]} for m in models}
    parts = ['<section id="compare">\n<h2>Models compared</h2>\n'
             '<p class="muted">One row per scenario, a column per model, one colour scale for all columns '
             "(red = worse than ID). Click a header to sort.</p>\n"]
    fitted = [m for m in models if ((infos.get(m) or {}).get("estimator") or {}).get("kind") == "fit"]
    if len(fitted) > 1:
        # A CLUB fitted per model moves EMID by itself (a refit shifts it by ~0.01-0.08):
        # that noise is in the difference between these columns and not in the CIs.
        parts.append('<p class="banner">The CLUB estimators of ' + ", ".join(f"<code>{esc(m)}</code>" for m in fitted)
                     + " were each fitted on that model's own answers: EMI/EMID differences between models include the "
                     "estimator's fitting noise, which the intervals do not cover. Score the models with one "
                     "estimator (<code>--estimator PATH</code>) to compare them.</p>\n")
    metrics = [("emid", "EMID", 3, False)]
    if any(by[m][n]["rp_score"] is not None for m in models for n in names):
        metrics.append(("rp_score", "RP", 1, True))
    if any(by[m][n].get("accuracy") is not None for m in models for n in names):
        metrics.append(("accuracy", "Accuracy", 3, True))
    for key, label, digits, centred in metrics:
        vals = [by[m][n][key] for m in models for n in names if by[m][n][key] is not None]
        if centred:  # RP: against each model's own ID RP, so the colour is its drop
            dev = [by[m][n][key] - by[m][id_name][key] for m in models for n in names
                   if by[m][n][key] is not None and by[m][id_name][key] is not None]
            lim = max((abs(d) for d in dev), default=0.0)
        else:
            lim = max((abs(v) for v in vals), default=0.0)
        head = '<th class="sortable t" data-type="text">scenario</th>' + "".join(
            f'<th class="sortable" data-type="num">{esc(m)}</th>' for m in models)
        body = []
        for n in names:
            tds = [f'<td class="t" data-v="{esc(n)}">{esc(n)}{" (ID)" if n == id_name else ""}</td>']
            for m in models:
                v = by[m][n][key]
                ref = by[m][id_name][key] if centred else 0.0
                color = heat_color(None if v is None or ref is None else (ref - v if centred else v), lim)
                tds.append(f'<td class="cell" data-v="{cell(v)}" style="{color}">{fmt(v, digits)}</td>')
            body.append(f'<tr data-scenario="{esc(n)}">' + "".join(tds) + "</tr>")
        what = (f"colour = drop from the model's own ID {label}" if centred else "colour = EMID (0 = as on ID)")
        parts.append(f"<h3>{label} per scenario</h3>\n<p class=\"muted\">{what}; scale ±{fmt(lim, digits)}.</p>\n"
                     f'<div class="table-wrap"><table id="compare-{key}" class="data heat sortable-table">'
                     f"<thead><tr>{head}</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>\n")
    if figs:
        parts.append('<div class="figs">' + "".join(_figure(*f) for f in figs) + "</div>\n")
    parts.append("</section>\n")
    return "".join(parts)


ANSWER_CHARS = 600  # longer answers are cut on the page (a gallery column is narrow); the files have them whole


def _clip(text: str) -> str:
    if len(text) <= ANSWER_CHARS:
        return text
    return text[:ANSWER_CHARS].rsplit(" ", 1)[0] + f" … ({len(text) - ANSWER_CHARS} more characters)"


def _answer_html(a: dict, show_model: bool) -> str:
    who = f"<strong>{esc(a['model'])}</strong>: " if show_model else ""
    if a["state"] == "missing":
        body = '<span class="bad">no answer (missing)</span>'
    elif a["state"] == "failed":
        body = '<span class="bad">generation failed</span>'
    else:
        body = esc(_clip(a["text"]))
    if a["judge_failed"]:
        score = '<div class="sc bad">judgment failed (left out of RP)</div>'
    elif a["scores"]:
        ref, mod = a["scores"]
        score = f'<div class="sc">judge: answer {mod:g} / reference {ref:g}</div>'
    else:
        score = ""
    return f'<div class="a">{who}{body}</div>{score}'


def _examples(galleries, models: list[str], id_name: str) -> str:
    parts = ['<section id="examples">\n<h2>Examples</h2>\n<p class="muted">Per shift type, a few items chosen '
             f"deterministically: up to {ex.BY_DROP} whose judge score dropped most from the clean column, then "
             "the first questions. Thumbnails are downscaled copies. In questions, "
             "<ins>inserted or changed words</ins> are marked against the clean question.</p>\n"]
    for g, rows in galleries:
        parts.append(f'<div class="gallery"><h3>{esc(g.title)}</h3>\n')
        if not rows:
            parts.append('<p class="muted">No question is in every set of this group.</p></div>\n')
            continue
        for row in rows:
            cells = []
            ref = next((a["reference"] for c in row for a in c.answers if a.get("reference")), None)
            for c in row:
                img = (f'<img src="{c.image}" alt="{esc(c.scenario)}">' if c.image else
                       '<div class="bad">image unreadable</div>' if c.image_name else "")
                answers = "".join(_answer_html(a, len(models) > 1) for a in c.answers)
                cells.append(f'<div class="cell" data-scenario="{esc(c.scenario)}"><div class="lab">{esc(c.label)}'
                             f'</div><div class="muted"><code>{esc(c.scenario)}</code></div>{img}'
                             f'<div class="q">Q: {c.question_html}</div>{answers}</div>')
            refs = (f'<div class="cell"><div class="lab">reference answer</div><div class="ref">{esc(_clip(ref or ""))}'
                    "</div></div>")
            parts.append('<div class="item">' + "".join(cells) + refs + "</div>\n")
        parts.append("</div>\n")
    parts.append("</section>\n")
    return "".join(parts)


def _notes() -> str:
    return ('<footer id="notes"><h3>How to read</h3><ul>'
            "<li><strong>EMI</strong> (effective mutual information): information the model's answers carry "
            "about the queries, minus that of the reference answers; higher is better.</li>"
            "<li><strong>EMID</strong> = EMI(ID) − EMI(shifted set): &gt; 0 means the model lost information under "
            "that shift. <strong>UB</strong> (EMID upper bound): √JSD_v + √JSD_t + JSD_y,ID^¼ + JSD_y,OOD^¼, the "
            "reference code's EMID_UB; EMID should stay below it.</li>"
            "<li><strong>RP</strong>: the judge's relative preference, 100 × mean(answer score) / "
            "mean(reference score); <strong>win</strong>: share of items scored above the reference (ties "
            "half). Failed judgments are left out of both and counted.</li>"
            "<li>Intervals are 95% percentile bootstrap intervals over items with the estimator fixed: they do "
            "not include the estimator's own variance.</li>"
            "<li>Every number is in <code>per_shift.csv</code>, <code>correlations.csv</code> and "
            "<code>summary.csv</code> beside this page.</li></ul></footer>\n")
