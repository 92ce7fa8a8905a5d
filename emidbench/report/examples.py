"""The page's examples: what the shifted inputs and the answers looked like.

Galleries, one per shift type: for a synthetic type (defocus_blur, KeyboardAug, ...)
the base set is the ID set and the columns are the type's severities; for a natural
domain split the base set is its English scenario and the columns are its languages.
Joint (visual + text) scenarios are combinations of the single-type galleries and get
none of their own. Items are matched by question_id across a gallery's scenarios.

Items are chosen deterministically: the ones whose judge score (the model's score,
mean over the reported models) dropped most from the base set to any column, then the
first questions in the base set's order, up to ITEMS per gallery (without a judge, the
first ones only). Thumbnails are downscaled copies (THUMB px on the long side), so the
page stays small however large the images are.
"""

from __future__ import annotations

import base64
import difflib
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from emidbench.common.io import read_jsonl
from emidbench.rundir import RunDir
from emidbench.rundir.answers import read_answers

ITEMS = 3  # items per gallery
BY_DROP = 2  # of which chosen for the largest judge-score drop
THUMB = 160  # px, long side


@dataclass
class Gallery:
    title: str  # e.g. "defocus_blur (visual)"
    kind: str  # visual | text | natural
    base: str  # scenario the columns are compared with
    columns: list[tuple[str, str]]  # (label, scenario), in severity / language order
    base_label: str = "clean (ID)"
    items: list[str] = field(default_factory=list)  # question ids (str)


def galleries(manifest, id_name: str) -> list[Gallery]:
    """The galleries this run's scenarios make, in a fixed order (synthetic visual, text,
    then natural domains)."""
    out: dict[tuple, Gallery] = {}
    natural: dict[str, dict[str, str]] = {}
    for s in manifest.scenarios:
        if s.name == id_name:
            continue
        if s.family == "natural":
            if s.extra.get("icl"):  # the same items as its domain's scenario, with examples before them
                continue
            dom, split, lang = s.extra.get("domain"), s.extra.get("split"), s.extra.get("language") or "English"
            domain = (f"{dom}_{split}" if split else dom) if dom else "ID domain"
            natural.setdefault(domain, {})[lang] = s.name
            continue
        if s.modality not in ("visual", "text"):
            continue
        spec = s.visual if s.modality == "visual" else s.text
        if spec is None:
            continue
        key = (s.modality, spec.name)
        g = out.setdefault(key, Gallery(f"{spec.name} ({s.modality} shift)", s.modality, id_name, []))
        label = spec.name if spec.severity is None else f"severity {spec.severity}"
        g.columns.append((label, s.name, spec.severity if isinstance(spec.severity, (int, float)) else 0))
    result = []
    for key in sorted(out, key=lambda k: (k[0] != "visual", k[1].lower())):
        g = out[key]
        g.columns = [(label, name) for label, name, _ in sorted(g.columns, key=lambda c: (c[2], c[1]))]
        result.append(g)
    for domain in sorted(natural, key=lambda d: (d != "ID domain", d)):
        langs = dict(natural[domain])
        # The ID domain's languages compare with the ID set (English); another domain's with
        # its own English set, or, without one, show that domain's items alone.
        base = id_name if domain == "ID domain" else langs.pop("English", None)
        cols = sorted(langs.items())
        base_label = "English (ID)" if base == id_name else "English"
        if base is None:
            (base_label, base), cols = cols[0], cols[1:]
        title = "languages on the ID images" if domain == "ID domain" else f"{domain} (natural shift)"
        result.append(Gallery(title, "natural", base, cols, base_label))
    return [g for g in result if g.columns or g.kind == "natural"]


def model_scores(rd: RunDir, model: str, scenario: str) -> dict[str, dict]:
    """Judge records of one scenario keyed by str(question_id) (empty without a judge)."""
    path = rd.scores_dir(model) / "judge" / f"{scenario}.jsonl"
    if not path.is_file():
        return {}
    return {str(r.get("question_id")): r for r in read_jsonl(path)}


def _model_score(rec: dict | None):
    if not rec or rec.get("failed") or not isinstance(rec.get("scores"), list) or len(rec["scores"]) != 2:
        return None
    return float(rec["scores"][1])


def choose_items(g: Gallery, questions: dict[str, dict[str, dict]], judged: dict[str, dict[str, dict[str, dict]]],
                 models: list[str]) -> list[str]:
    """Question ids present in the base set and every column: the BY_DROP largest judge
    drops (mean over models of base score minus the column's lowest score), then the
    first remaining in the base set's order."""
    names = [g.base] + [n for _, n in g.columns]
    common = [q for q in questions[g.base] if all(q in questions[n] for n in names)]
    drops = []
    for pos, q in enumerate(common):
        per_model = []
        for m in models:
            base = _model_score(judged[m][g.base].get(q))
            cols = [_model_score(judged[m][n].get(q)) for _, n in g.columns]
            cols = [c for c in cols if c is not None]
            if base is not None and cols:
                per_model.append(base - min(cols))
        if per_model:
            drops.append((-sum(per_model) / len(per_model), pos, q))
    chosen = [q for d, _, q in sorted(drops)[:BY_DROP] if d < 0]
    for q in common:
        if len(chosen) >= ITEMS:
            break
        if q not in chosen:
            chosen.append(q)
    return chosen


def thumbnail(path: Path, cache: dict) -> str | None:
    """A data URI of a downscaled JPEG copy of the image (None if it cannot be read: the
    page says so instead of showing a broken image)."""
    if path in cache:
        return cache[path]
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=82, optimize=True)
        uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except (OSError, ValueError):
        uri = None
    cache[path] = uri
    return uri


def word_diff(old: str, new: str) -> tuple[str, str]:
    """HTML of both texts with the words that differ marked (<del> in the old, <ins> in
    the new); texts with little in common (a translation) are shown as they are."""
    a, b = old.split(), new.split()
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    if sm.ratio() < 0.3:
        return html.escape(old), html.escape(new)
    left, right = [], []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        old_words = html.escape(" ".join(a[i1:i2]))
        new_words = html.escape(" ".join(b[j1:j2]))
        if op == "equal":
            left.append(old_words)
            right.append(new_words)
            continue
        if i2 > i1:
            left.append(f"<del>{old_words}</del>")
        if j2 > j1:
            right.append(f"<ins>{new_words}</ins>")
    return " ".join(left), " ".join(right)


@dataclass
class Cell:
    """One scenario's view of one item: its image, question, and each model's answer."""
    label: str
    scenario: str
    image: str | None  # data URI
    image_name: str
    question_html: str
    answers: list[dict]  # per model: model, text, state (ok|missing|failed), scores, judge_failed


def build(rd: RunDir, manifest, id_name: str, models: list[str]) -> list[tuple[Gallery, list[list[Cell]]]]:
    """Every gallery with its chosen items, each item a row of cells (base first)."""
    gals = galleries(manifest, id_name)
    needed = sorted({n for g in gals for n in [g.base] + [c for _, c in g.columns]})
    questions = {n: {str(q["question_id"]): q for q in rd.read_scenario(n)} for n in needed}
    judged = {m: {n: model_scores(rd, m, n) for n in needed} for m in models}
    answers = {m: {n: read_answers(rd.responses_path(m, n)) for n in needed} for m in models}
    thumbs: dict = {}
    out = []
    for g in gals:
        g.items = choose_items(g, questions, judged, models)
        rows = []
        for q in g.items:
            base_q = questions[g.base][q]
            row = []
            for label, name in [(g.base_label, g.base)] + g.columns:
                item = questions[name][q]
                text = html.escape(item["text"])
                if name != g.base and g.kind != "visual":
                    _, text = word_diff(base_q["text"], item["text"])
                image = item.get("image")
                uri = thumbnail(rd.image_path(image), thumbs) if isinstance(image, str) and image else None
                cell_answers = []
                for m in models:
                    usable, failed = answers[m][name]
                    rec = judged[m][name].get(q)
                    state = "ok" if q in usable else "failed" if q in failed else "missing"
                    cell_answers.append({
                        "model": m, "text": usable[q]["text"] if q in usable else None, "state": state,
                        "scores": rec.get("scores") if rec and not rec.get("failed") else None,
                        "judge_failed": bool(rec and rec.get("failed")), "reference": item.get("reference")})
                row.append(Cell(label, name, uri, image if isinstance(image, str) else "", text, cell_answers))
            rows.append(row)
        out.append((g, rows))
    return out
