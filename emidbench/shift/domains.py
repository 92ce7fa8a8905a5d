"""Domain suites and in-context examples (Zhang et al. 2024, "On the OOD Generalization of
MLLMs"; issue 16).

A suite with a `domains:` section makes one scenario per domain of the benchmark: the
samples are grouped by `Sample.domain` (a sample without one belongs to the set the
benchmark holds it in: the ID set's name, or its second domain's name), the ID domain
(`--id-domain`, else the suite's `id_domain`, else the first domain in the benchmark's
order) is the ID scenario, every other domain D a natural visual shift `<name>_<D>`.

Per-class sampling (`per_class: N`, `--per-class N`): each domain keeps at most N samples
per class (the correct option), chosen by a seeded hash of (seed, domain, question_id) —
the paper took the first N files in directory order, which is not deterministic. The
kept samples stay in the benchmark's order; the counts go into the manifest.

In-context examples (`icl: [K, ...]`, `icl_source: [id, target]`): scenario
`<name>_<D>_icl<K>_<source>` asks domain D's (sampled) items, each preceded by K labelled
examples drawn from the ID domain (`id`) or from D itself (`target`). The pool is the
whole domain as loaded (before per-class sampling: the held-out samples included) minus
the item itself and any sample with the same image — an item never sees itself, or its
image, as an example. For the ID domain both sources are the same pool: it gets one
scenario per K, named with `id`.

Selection per item is deterministic and class-stratified: a generator seeded from (seed,
source, pool domain, question_id) shuffles the classes and each class's samples, and the
examples are the classes' samples taken in turns (class 1's first, class 2's first, ...,
class 1's second, ...). The first K of that order are the examples, so the K=2 examples
are the first two of the K=4 ones (the accuracy-vs-K curve compares like with like), and
class counts differ by at most one while every class has samples left.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.common.errors import UserError
from emidbench.common.hashing import derive_seed

ICL_SOURCES = ("id", "target")
DOMAIN_NAME_RE = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class DomainSetup:
    """A suite's `domains:` section, after the command line's overrides."""

    id_domain: str | None = None
    per_class: int | None = None  # None or 0: every sample
    icl: tuple[int, ...] = ()  # K values
    icl_source: tuple[str, ...] = ("target",)
    where: str = ""  # the suite file, for messages

    def with_options(self, id_domain=None, per_class=None, icl=None, icl_source=None) -> "DomainSetup":
        """The command line (or a config's shift section) overrides the suite."""
        out = self
        if id_domain is not None:
            out = replace(out, id_domain=str(id_domain))
        if per_class is not None:
            out = replace(out, per_class=check_per_class(per_class, "--per-class"))
        if icl is not None:
            out = replace(out, icl=parse_icl(icl, "--icl"))
        if icl_source is not None:
            out = replace(out, icl_source=parse_icl_source(icl_source, "--icl-source"))
        return out

    def record(self) -> dict:
        return {"id_domain": self.id_domain, "per_class": self.per_class, "icl": list(self.icl),
                "icl_source": list(self.icl_source)}


def check_per_class(value, what: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{what} must be a whole number >= 0 (0: every sample), not {value!r}")
    return value or None


def parse_icl(value, what: str) -> tuple[int, ...]:
    """`2,4,8`, [2, 4, 8] or 4 -> (2, 4, 8): distinct K >= 1, in the order given."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    out: list[int] = []
    for item in items:
        try:
            k = int(str(item).strip()) if not isinstance(item, bool) else None
        except ValueError:
            k = None
        if k is None or k < 1 or (isinstance(item, float) and item != k):
            raise UserError(f"{what}: {item!r} is not a number of in-context examples (a whole number >= 1)")
        if k not in out:
            out.append(k)
    return tuple(out)


def parse_icl_source(value, what: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        src = str(item).strip()
        if src not in ICL_SOURCES:
            raise UserError(f"{what}: unknown source {item!r} (use id, target or both: id,target)")
        if src not in out:
            out.append(src)
    if not out:
        raise UserError(f"{what}: give id, target or both")
    return tuple(out)


def scenario_domain_name(domain: str) -> str:
    """A domain as it appears in a scenario name (letters, digits and _ . + - only)."""
    return DOMAIN_NAME_RE.sub("_", str(domain)).strip("_") or "domain"


def class_of(s: Sample) -> str:
    return s.reference


# --------------------------------------------------------------------------- the benchmark by domain

@dataclass
class Domains:
    """The benchmark regrouped by domain: `bench` has the ID domain's (sampled) samples as
    its ID set and every other domain's as a second domain; `pools` holds each domain's
    samples as loaded (the in-context examples' pool)."""

    bench: Benchmark
    id_domain: str
    pools: dict[str, list[Sample]] = field(default_factory=dict)  # domain -> every sample
    record: dict = field(default_factory=dict)  # for the manifest

    def pool_of(self, plan_domain: str | None) -> list[Sample]:
        return self.pools[self.id_domain if plan_domain is None else plan_domain]


def group_by_domain(bench: Benchmark) -> dict[str, list[Sample]]:
    """domain -> samples, in the order domains first appear (ID set first, then the second
    domains). A sample without a domain belongs to the set the benchmark holds it in."""
    out: dict[str, list[Sample]] = {}
    for holder, samples in [(bench.name, bench.samples), *bench.domains.items()]:
        for s in samples:
            out.setdefault(s.domain if s.domain is not None else holder, []).append(s)
    return out


def per_class_sample(samples: list[Sample], n: int | None, seed: int, domain: str) -> list[Sample]:
    """At most n samples per class, chosen by a seeded hash; the benchmark's order kept."""
    if not n:
        return list(samples)
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(class_of(s), []).append(s)
    keep: set = set()
    for members in by_class.values():
        ranked = sorted(members, key=lambda s: (derive_seed(seed, "per_class", domain, s.question_id),
                                                str(s.question_id)))
        keep.update(id(s) for s in ranked[:n])
    return [s for s in samples if id(s) in keep]


def by_domain(bench: Benchmark, setup: DomainSetup, seed: int, limit: int | None = None) -> Domains:
    """The benchmark regrouped for a domain suite (see the module's docstring)."""
    groups = group_by_domain(bench)
    names = list(groups)
    id_domain = setup.id_domain if setup.id_domain is not None else names[0]
    if id_domain not in groups:
        raise UserError(f"--id-domain {id_domain!r}: benchmark {bench.name} has no such domain "
                        f"(its domains: {', '.join(names)})")
    if len(groups) < 2:
        raise UserError(f"suite {setup.where or 'domains'}: benchmark {bench.name} has one domain ({id_domain}); a "
                        "domain suite needs a domain column with at least two values (--columns ...,domain=COLUMN)")
    if setup.per_class or setup.icl:
        open_ended = next((s for ss in groups.values() for s in ss if not s.is_choice), None)
        if open_ended is not None:
            what = "--per-class" if setup.per_class else "--icl"
            raise UserError(f"{what} needs choice samples (classes); sample {open_ended.question_id!r} "
                            f"({open_ended.image_name}) is an open-ended question")
    seen: dict[str, str] = {}
    for d in names:
        key = scenario_domain_name(d)
        if key in seen:
            raise UserError(f"domains {seen[key]!r} and {d!r} give the same scenario name part {key!r}")
        seen[key] = d
    sampled = {d: per_class_sample(groups[d], setup.per_class, seed, d) for d in names}
    if limit is not None:
        sampled = {d: ss[:limit] for d, ss in sampled.items()}
    record = {"id_domain": id_domain, "chosen_by": "option" if setup.id_domain is not None else "first domain",
              "per_class": setup.per_class, "limit": limit,
              "sampling": "per class: the N smallest derive_seed(seed, 'per_class', domain, question_id); "
                          "benchmark order kept",
              "counts": {d: {"loaded": len(groups[d]), "kept": len(sampled[d]),
                             "per_class": _class_counts(sampled[d])} for d in names}}
    regrouped = Benchmark(bench.name, sampled[id_domain], {d: sampled[d] for d in names if d != id_domain},
                          bench.source)
    for attr in ("scenes",):  # what a generated benchmark keeps beside its samples
        if hasattr(bench, attr):
            setattr(regrouped, attr, getattr(bench, attr))
    return Domains(regrouped, id_domain, groups, record)


def _class_counts(samples: list[Sample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        out[class_of(s)] = out.get(class_of(s), 0) + 1
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- in-context examples

def example_order(item: Sample, pool: list[Sample], seed: int, source: str, pool_domain: str) -> list[Sample]:
    """Every usable example of `pool` for `item`, in the order they are taken (the first K
    are the examples at K): classes shuffled, each class shuffled, classes taken in turns.
    Never the item itself, nor a sample with the item's image."""
    rng = random.Random(derive_seed(seed, "icl", source, pool_domain, item.question_id))
    by_class: dict[str, list[Sample]] = {}
    for s in pool:
        # the item itself (question ids may repeat across domains: compared as the sample)
        if s is item or (s.question_id == item.question_id and s.domain == item.domain) \
                or s.image_hash == item.image_hash:
            continue
        by_class.setdefault(class_of(s), []).append(s)
    # classes in a fixed order before shuffling: the item's options first, then any others
    order = [c for c in item.choices if c in by_class] + sorted(c for c in by_class if c not in item.choices)
    rng.shuffle(order)
    queues = []
    for c in order:
        members = list(by_class[c])
        rng.shuffle(members)
        queues.append(members)
    out: list[Sample] = []
    depth = 0
    while any(depth < len(q) for q in queues):
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out


def select_examples(item: Sample, pool: list[Sample], k: int, seed: int, source: str, pool_domain: str) -> list[Sample]:
    return example_order(item, pool, seed, source, pool_domain)[:k]


def icl_examples(plans, selected: dict, domains: Domains, seed: int) -> dict[str, list[list[Sample]]]:
    """scenario -> per item (in order) its examples, for every ICL plan. K larger than an
    item's pool is refused before anything is written."""
    out: dict[str, list[list[Sample]]] = {}
    for p in plans:
        if not p.icl:
            continue
        pool_domain = domains.id_domain if p.icl_source == "id" else (p.domain or domains.id_domain)
        pool = domains.pools[pool_domain]
        per_item = []
        for s in selected[p.name]:
            order = example_order(s, pool, seed, p.icl_source, pool_domain)
            if len(order) < p.icl:
                raise UserError(f"--icl {p.icl} ({p.name}): the pool of domain {pool_domain!r} has only "
                                f"{len(order)} examples for sample {s.question_id!r} (the domain's samples other than "
                                "the item and its image); use a smaller K")
            per_item.append(order[:p.icl])
        out[p.name] = per_item
    return out
