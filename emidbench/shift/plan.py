"""What the shift stage will make, before it makes anything: each scenario's samples (the
natural split), the fingerprint of everything its file is made from, the checks that
refuse bad input before any work starts, and the dry-run table."""

from __future__ import annotations

import json

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.benchmarks.choices import DEFAULT_TEMPLATE
from emidbench.common.errors import UserError
from emidbench.common.hashing import content_hash
from emidbench.shift.suites import ENGLISH, ScenarioPlan, Suite
from emidbench.shift.visual import MIN_SIDE, PNG_ENCODER


def domain_split(bench: Benchmark, domain: str, embedder, paper_split: dict | None) -> dict:
    from emidbench.shift.split import natural_split, split_from_index

    if paper_split is not None:
        return split_from_index(paper_split, bench.domains[domain])
    return natural_split(bench.samples, bench.domains[domain], embedder)


def select(samples: list[Sample], split: dict | None, which: str | None) -> list[Sample]:
    if not which:
        return samples
    keep = set(split[which])
    return [s for s in samples if s.question_id in keep]


def scenario_fingerprint(p: ScenarioPlan, samples: list[Sample], machine: dict, seed: int, sim: str | None = None,
                         template: str | None = None, examples: list | None = None) -> str:
    """sha256 of everything the scenario's file is made from. Choice samples add their
    options, domain and the question template, an ICL scenario its examples (open-ended
    ones keep their old prints)."""
    choice = any(s.is_choice for s in samples)
    parts = [[p.name, p.family, p.visual and p.visual.to_json(), p.text and p.text.to_json(), p.domain, p.language,
              p.split, seed, PNG_ENCODER if p.visual else None] + ([sim] if sim else [])
             + ([template or DEFAULT_TEMPLATE] if choice else [])
             + ([p.icl, p.icl_source, p.domain_name] if p.icl or p.domain_name else [])]
    for i, s in enumerate(samples):
        parts.append([s.question_id, s.image_hash, s.text, s.reference, s.category, s.context,
                      s.translations.get(p.language), machine.get((p.language, s.text))]
                     + ([list(s.choices), s.domain] if s.is_choice or s.domain is not None else [])
                     + ([[e.question_id, e.image_hash, e.text, e.reference, list(e.choices)] for e in examples[i]]
                        if examples is not None else []))
    return content_hash(json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"))


def check_image_sizes(plans: list[ScenarioPlan], samples_of: dict) -> None:
    """Refuse images a corruption cannot take, before any work starts."""
    seen: set = set()
    for d in sorted({p.domain for p in plans if p.visual is not None}, key=str):
        for s in samples_of[d]:
            h = s.image_hash
            if h in seen:
                continue
            seen.add(h)
            w, hgt = s.image_size()
            if min(w, hgt) < MIN_SIDE:
                raise UserError(f"sample {s.question_id} ({s.image_name}): image is {w}x{hgt} px; image corruptions "
                                f"need at least {MIN_SIDE} px on each side (resize the benchmark's images, or use a "
                                "suite without visual shifts)")


def scenario_sizes(plans: list[ScenarioPlan], bench: Benchmark) -> dict[str, str]:
    """Questions per scenario as the plan shows them, without computing the natural split:
    the easy side takes whole images while it stays within half the domain's questions,
    so it has at most n//2 of them and the hard side the rest."""
    out = {}
    for p in plans:
        n = len(bench.samples if p.domain is None else bench.domains[p.domain])
        out[p.name] = {"easy": f"≤{n // 2}", "hard": f"≥{n - n // 2}"}.get(p.split, str(n))
    return out


def print_plan(plans: list[ScenarioPlan], bench: Benchmark, suite: Suite, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    sizes = scenario_sizes(plans, bench)
    distinct = {(s.image_hash, p.visual.name, p.visual.severity) for p in plans if p.visual
                for s in (bench.samples if p.domain is None else bench.domains[p.domain])}
    table = Table(title=f"suite {suite.name} on {bench.name}: {len(plans)} scenarios "
                        f"({len(plans) - 1} shifts + the ID set), {len(distinct)} distinct corrupted images")
    # the name is what a user copies (--scenarios globs): never cut; one "shift" column keeps 80 columns
    table.add_column("scenario", no_wrap=True)
    table.add_column("family")
    table.add_column("shift")
    table.add_column("n", justify="right")
    for p in plans:
        parts = [(f"{p.domain} {p.split}" if p.split else p.domain) if p.domain else "",
                 f"icl {p.icl} ({p.icl_source})" if p.icl else "",
                 f"{p.visual.name} {p.visual.severity}" if p.visual else "",
                 f"{p.text.name} {p.text.severity}" if p.text else "",
                 p.language if ((p.family == "natural" and p.domain_name is None) or p.language != ENGLISH) else ""]
        table.add_row(p.name, p.family, " + ".join(x for x in parts if x) or "none (ID)", sizes[p.name])
    (console or Console()).print(table)
