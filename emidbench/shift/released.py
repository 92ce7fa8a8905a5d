"""`emidbench shift RUN --benchmark SETS --suite released`: pre-shifted scenario sets (the
paper's released DatasetDicts, or a user's own: one split per scenario of one benchmark)
-> RUN/shifts/, verbatim.

Every split becomes a scenario under its own name, with its questions, images (stored
once under their content hash, as the bytes the dataset holds) and references exactly
as released: nothing is regenerated, so answers generated on the released sets line up
with the run's questions (`import-responses` checks that they do).

What each scenario is, is read from its name, as the generated suites name them
(suites.py): relative to the ID set's base name B (`llava_bench_coco`),

    B, B_English                      the ID set
    B_<corruption>_<k>[_<text>_<k>]   synthetic: a CORRUPTIONS and/or PERTURBATIONS name
    B_<text>_<k>                      synthetic, text only
    B_<Language>                      natural: the ID images, translated questions
    <domain>_<easy|normal|hard>[_<Language>]   natural: a second visual domain's split

Any other name is a scenario of family `custom` whose shift is unknown (recorded, not an
error). The released sets carry no category and no judge context (captions, boxes):
`--source-benchmark` joins both by question_id — the ID domain's questions from the
source's ID set, a second domain's from the source's domain of that name. Without it the
metrics work as usual and the manifest says what the judge lacks.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace

from emidbench.benchmarks.base import Benchmark
from emidbench.benchmarks.released import ScenarioSets
from emidbench.common.errors import UserError
from emidbench.common.images import image_format
from emidbench.rundir import RunDir
from emidbench.rundir.manifest import Manifest, ScenarioEntry, ShiftSpec
from emidbench.shift.suites import ENGLISH, SPLITS

SUITE = "released"
LANGUAGE_RE = re.compile(r"[A-Z][a-z]+")


@dataclass(frozen=True)
class ParsedName:
    family: str
    modality: str
    visual: ShiftSpec | None = None
    text: ShiftSpec | None = None
    domain: str | None = None
    language: str = ENGLISH
    split: str | None = None

    def extra(self) -> dict:
        if self.family == "natural":
            return {"domain": self.domain, "language": self.language, "split": self.split}
        if self.family == "custom":
            return {"shift": "unknown (the name parses to no known shift)"}
        return {}


def _shift_at(rest: str, names) -> tuple[ShiftSpec | None, str]:
    """The registered shift `<name>_<k>` at the start of `rest` (the longest name that
    fits) and what follows it."""
    for name in sorted(names, key=len, reverse=True):
        m = re.match(re.escape(name) + r"_(\d+)(?:_|$)", rest)
        if m:
            return ShiftSpec(name, int(m.group(1))), rest[m.end():]
    return None, rest


def parse_scenario_name(name: str, id_split: str, base: str) -> ParsedName:
    """Family, modality and shifts of scenario `name`, relative to the ID set's base name."""
    from emidbench.shift.text import PERTURBATIONS
    from emidbench.shift.visual import CORRUPTIONS

    if name == id_split:
        return ParsedName("id", "none")
    if name.startswith(base + "_"):
        rest = name[len(base) + 1:]
        visual, after = _shift_at(rest, list(CORRUPTIONS))
        text, after = _shift_at(after, list(PERTURBATIONS))
        if (visual or text) and not after:
            modality = "joint" if visual and text else "visual" if visual else "text"
            return ParsedName("synthetic", modality, visual, text)
        if LANGUAGE_RE.fullmatch(rest):
            return ParsedName("natural", "text" if rest != ENGLISH else "none", language=rest)
    m = re.fullmatch(r"(?P<domain>.+?)_(?P<split>" + "|".join(SPLITS) + r")(?:_(?P<lang>[A-Z][a-z]+))?", name)
    if m:
        lang = m.group("lang") or ENGLISH
        return ParsedName("natural", "joint" if lang != ENGLISH else "visual", domain=m.group("domain"),
                          language=lang, split=m.group("split"))
    return ParsedName("custom", "none")


def pick_id_split(sets: ScenarioSets, name: str | None) -> tuple[str, str]:
    """(the ID split, its base name). Given (--name, or known for the released sets), else
    the split most other split names extend (`llava_bench_coco` for `..._frost_3`; the
    base `llava_bench_coco` of `llava_bench_coco_English` for `..._German`)."""
    splits = list(sets.splits)
    chosen = name or sets.id_split
    if chosen:
        if chosen not in sets.splits:
            raise UserError(f"{sets.source}: no split {chosen!r} to use as the ID set (splits: {', '.join(splits)})")
        return chosen, _base(chosen)
    best = None
    for s in splits:
        base = _base(s)
        n = sum(1 for o in splits if o != s and o.startswith(base + "_"))
        if n and (best is None or (n, -len(s)) > best[0]):
            best = ((n, -len(s)), s, base)
    if best is None:
        raise UserError(f"{sets.source}: cannot tell which split is the ID set (no split name extends another); "
                        f"pass --name SPLIT (splits: {', '.join(splits)})")
    return best[1], best[2]


def _base(split: str) -> str:
    return split[: -len(ENGLISH) - 1] if split.endswith("_" + ENGLISH) else split


def run_released(sets: ScenarioSets, out, *, name: str | None = None, source: Benchmark | None = None,
                 dry_run: bool = False, console=None) -> Manifest:
    """Write RUN/shifts/ from `sets`, verbatim; returns the manifest."""
    id_split, base = pick_id_split(sets, name)
    order = [id_split] + [s for s in sets.splits if s != id_split]
    parsed = {s: parse_scenario_name(s, id_split, base) for s in order}
    notes: list[str] = []

    def say(msg: str) -> None:
        if console is not None:
            console.print(msg, highlight=False, soft_wrap=True)
        else:
            print(msg, file=sys.stderr)

    unknown = [s for s in order if parsed[s].family == "custom"]
    if unknown:
        notes.append(f"{len(unknown)} splits parse to no known shift (family custom): {', '.join(unknown[:5])}"
                     + (", ..." if len(unknown) > 5 else ""))
    samples = {s: sets.splits[s] for s in order}
    joined: dict = {}
    if source is not None:
        samples, joined = _join(samples, parsed, source, notes)
    else:
        notes.append("no --source-benchmark: the questions have no category and no judge context (captions, "
                     "boxes); EMI and EMID are unaffected, a judge sees an empty [Context] and the generic rule")
    for n in notes:
        say(f"note: {n}")
    if dry_run:
        _print_plan(order, parsed, samples, sets, console)
        return Manifest(SUITE, sets.name, 0, id_split, [])

    run = RunDir(out)
    run.shifts.mkdir(parents=True, exist_ok=True)
    run.manifest_path.unlink(missing_ok=True)  # present = finished
    stored: dict[str, str] = {}  # image sha256 -> stored name
    entries = []
    for s in order:
        records = []
        for smp in samples[s]:
            h = smp.image_hash
            if h not in stored:
                data = smp.read_image()
                stored[h] = run.put_image(data, image_format(data))
            rec = {"question_id": smp.question_id, "image": stored[h], "text": smp.text, "category": smp.category,
                   "reference": smp.reference}
            if smp.context is not None:
                rec["context"] = smp.context
            records.append(rec)
        run.write_scenario(s, records)
        p = parsed[s]
        extra = {**p.extra(), "released_split": s}
        if s == id_split and base != id_split:
            extra["alias"] = base
        if s in joined:
            extra["joined"] = joined[s]
        entries.append(ScenarioEntry(s, p.family, p.modality, p.visual, p.text, len(records),
                                     run.scenario_path(s).name, extra))
    manifest = Manifest(SUITE, sets.name, 0, id_split, entries, extra={
        "source": sets.source, "released": True, "notes": notes,
        "columns": sets.columns, "source_benchmark": source.source if source is not None else None,
        "judge_context": "joined by question_id" if source is not None else "missing (no --source-benchmark)",
        "aliases": {base: id_split} if base != id_split else {},
        "seeds": "none: every scenario is the released split, verbatim",
    })
    run.write_manifest(manifest)
    if console is not None:
        say(f"shift: {len(entries)} scenarios from {sets.source} (verbatim), {len(stored)} distinct images")
    return manifest


def _join(samples: dict, parsed: dict, source: Benchmark, notes: list) -> tuple[dict, dict]:
    """Category and context by question_id: a second domain's scenarios from the source's
    domain of that name (its ids restart at 0), the others from the source's ID set."""
    out, joined, missing = {}, {}, {}
    for s, smps in samples.items():
        domain = parsed[s].domain
        pool = source.domains.get(domain) if domain else source.samples
        if pool is None:
            notes.append(f"scenario {s}: the source benchmark has no domain {domain!r}; not joined")
            out[s] = smps
            continue
        by_id = {x.question_id: x for x in pool}
        by_text = {str(k): v for k, v in by_id.items()}
        rows, n_missing = [], 0
        for smp in smps:
            src = by_id.get(smp.question_id) or by_text.get(str(smp.question_id))
            if src is None:
                n_missing += 1
                rows.append(smp)
                continue
            rows.append(replace(smp, category=smp.category or src.category, context=smp.context or src.context))
        out[s] = rows
        joined[s] = {"from": domain or source.name, "matched": len(smps) - n_missing}
        if n_missing:
            missing[s] = n_missing
    if missing:
        notes.append(f"{sum(missing.values())} questions in {len(missing)} scenarios have no question_id in the "
                     f"source benchmark (no category/context for them): "
                     + ", ".join(f"{k} ({v})" for k, v in list(missing.items())[:5]))
    return out, joined


def _print_plan(order, parsed, samples, sets: ScenarioSets, console) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{sets.source}: {len(order)} scenarios, verbatim")
    for col in ("scenario", "family", "shift", "n"):
        table.add_column(col, no_wrap=col == "scenario", justify="right" if col == "n" else "left")
    for s in order:
        p = parsed[s]
        parts = [f"{p.domain} {p.split}" if p.domain else "", f"{p.visual.name} {p.visual.severity}" if p.visual else "",
                 f"{p.text.name} {p.text.severity}" if p.text else "",
                 p.language if p.family == "natural" else "", "unknown" if p.family == "custom" else ""]
        table.add_row(s, p.family, " + ".join(x for x in parts if x) or "none (ID)", str(len(samples[s])))
    (console or Console()).print(table)
