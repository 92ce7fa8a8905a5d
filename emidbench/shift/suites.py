"""Shift suites: YAML files (shifts/*.yaml, or the user's own) -> a list of scenarios.

A suite has any of these keys (all optional):

    description: one line for `emidbench list`
    include: [other-suite, ...]          # built-in names or paths (relative to this file);
                                         #   their scenarios, the ID set once
    synthetic:                           # shifts of the ID set
      grid: full | separate              # full (default): every visual shift, every text
                                         #   shift, and every visual x text pair;
                                         #   separate: each shift alone, no pairs
      visual: [{name: frost, severities: [1, 3, 5]}, ...]   # a CORRUPTIONS name, 1..5
      text:   [{name: sr, severities: [4, 7]}, ...]         # a PERTURBATIONS name
    natural:                             # languages and second visual domains
      languages: [English, German, ...]  # the ID set in each non-English language
      splits: [easy, normal, hard]       # each second domain, split, x each language
    scenarios:                           # explicit ones (family "custom")
      - {name: my_name, visual: {name: fog, severity: 2}, text: {name: ocr, severity: 1}}
    choice_template: "... {question} ... {choices} ..."   # choice tasks: the question's wording
                                         #   ({choices}: the options' Python list repr); default:
                                         #   Zhang et al.'s (benchmarks/choices.py). An including
                                         #   suite's wins over an included one's.
    domains:                             # one scenario per domain of the benchmark (domains.py)
      id_domain: photo                   # the ID set (default: the first domain; --id-domain)
      per_class: 10                      # at most N samples per class and domain (--per-class)
      icl: [2, 4, 8]                     # in-context-example scenarios, K examples (--icl)
      icl_source: [id, target]           # examples from the ID domain and/or the target (--icl-source)

Names follow the paper's released datasets: <id>[_<corruption>_<k>][_<perturbation>_<k>]
for synthetic shifts (`llava_bench_coco_defocus_blur_5_KeyboardAug_3`), <id>_<Language>
and <domain>_<split>_<Language> for natural ones (`llava_bench_in_the_wild_hard_Korean`),
<id>_<domain> for a domain suite's domains and <id>_<domain>_icl<K>_<source> for their
in-context-example scenarios (`pacs_sketch_icl4_target`).
The ID set is always the first scenario and appears once; the natural family's name for
it, <id>_English, is recorded in the manifest as an alias.

Errors name the file and line: `mine.yaml:4: unknown key 'synthetic.visual[1].severites'
(did you mean 'synthetic.visual[1].severities'?)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from emidbench.common.errors import UserError, closest, did_you_mean
from emidbench.common.yamlfile import LineList, LineMap, kind, read_yaml
from emidbench.rundir.manifest import ShiftSpec
from emidbench.shift.domains import DomainSetup, check_per_class, parse_icl, parse_icl_source, scenario_domain_name

TOP_KEYS = {"description", "include", "synthetic", "natural", "scenarios", "choice_template", "domains"}
DOMAINS_KEYS = {"id_domain", "per_class", "icl", "icl_source"}
SYNTHETIC_KEYS = {"grid", "visual", "text"}
SHIFT_KEYS = {"name", "severities"}
NATURAL_KEYS = {"languages", "splits"}
SCENARIO_KEYS = {"name", "visual", "text"}
SPEC_KEYS = {"name", "severity"}
SPLITS = ("easy", "normal", "hard")
GRIDS = ("full", "separate")
ENGLISH = "English"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class ScenarioPlan:
    name: str
    family: str  # id | synthetic | natural | custom
    visual: ShiftSpec | None = None
    text: ShiftSpec | None = None
    domain: str | None = None  # None: the ID domain
    language: str = ENGLISH
    split: str | None = None
    icl: int = 0  # in-context examples per item (a domain suite's ICL scenarios)
    icl_source: str | None = None  # id | target: where they come from
    domain_name: str | None = None  # a domain suite's domain (the ID domain's too, where domain is None)

    @property
    def modality(self) -> str:
        v = self.visual is not None or self.domain is not None
        t = self.text is not None or self.language != ENGLISH
        return {(False, False): "none", (True, False): "visual", (False, True): "text", (True, True): "joint"}[(v, t)]

    def extra(self) -> dict:
        out: dict = {}
        if self.family == "natural" or self.domain:
            out.update(domain=self.domain, language=self.language, split=self.split)
        if self.domain_name is not None:
            out["domain"] = self.domain_name
        if self.icl:
            out["icl"] = {"k": self.icl, "source": self.icl_source}
        return out

    def same_work(self, other: "ScenarioPlan") -> bool:
        return (self.visual, self.text, self.domain, self.language, self.split, self.icl, self.icl_source) == \
            (other.visual, other.text, other.domain, other.language, other.split, other.icl, other.icl_source)


@dataclass
class Suite:
    name: str
    path: str = ""
    description: str = ""
    visual: list = field(default_factory=list)  # [(name, severity)]
    text: list = field(default_factory=list)
    grid: str = "full"
    languages: list = field(default_factory=list)
    splits: list = field(default_factory=list)
    custom: list = field(default_factory=list)  # [(name | None, visual ShiftSpec, text ShiftSpec, where)]
    parts: list = field(default_factory=list)  # included suites
    choice_template: str | None = None  # None: benchmarks.choices.DEFAULT_TEMPLATE
    domains: DomainSetup | None = None  # a domain suite (domains.py)

    @property
    def question_template(self) -> str | None:
        """The choice-question template in force: this suite's, else an included one's."""
        for s in reversed(self.flatten()):
            if s.choice_template is not None:
                return s.choice_template
        return None

    def flatten(self) -> list["Suite"]:
        out: list = []
        for part in self.parts:
            out += part.flatten()
        return out + [self]

    @property
    def has_natural(self) -> bool:
        return any(s.languages or s.splits or s.domains for s in self.flatten())

    def domain_setup(self) -> DomainSetup | None:
        """The `domains:` section in force: this suite's, else the last included one's."""
        found = [s.domains for s in self.flatten() if s.domains is not None]
        return found[-1] if found else None


# --------------------------------------------------------------------------- finding suites

def suites_dir() -> Path:
    """The repository's top-level shifts/ (a source checkout) or, in a wheel, emidbench/_shifts."""
    package = Path(__file__).resolve().parent.parent
    for cand in (package.parent / "shifts", package / "_shifts"):
        if cand.is_dir():
            return cand
    return package.parent / "shifts"


def list_suites() -> dict[str, str]:
    """Built-in suite name -> description, for `emidbench list`."""
    return {p.stem: load_suite(p.stem).description for p in sorted(suites_dir().glob("*.yaml"))}


def _locate(spec: str | Path, relative_to: Path | None) -> tuple[Path, str]:
    """(file, how to name it in messages)."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_absolute() and relative_to is not None and (relative_to / path).is_file():
            path = relative_to / path
        if not path.is_file():
            raise UserError(f"suite file {str(spec)!r} not found")
        return path, str(spec)
    builtin = suites_dir() / f"{spec}.yaml"
    if not builtin.is_file():
        names = [p.stem for p in sorted(suites_dir().glob("*.yaml"))]
        near = closest(spec, names)
        hint = f"did you mean '{near}'? " if near else ""
        raise UserError(f"unknown suite {str(spec)!r} ({hint}built in: {', '.join(names)}; or pass a .yaml file)")
    return builtin, f"shifts/{spec}.yaml"


# --------------------------------------------------------------------------- loading

def load_suite(spec: str | Path, _seen: tuple = (), _relative_to: Path | None = None) -> Suite:
    """A built-in suite name (shifts/NAME.yaml) or a path to a YAML file, validated."""
    path, where = _locate(spec, _relative_to)
    if path.resolve() in _seen:
        raise UserError(f"{where}: includes itself (through {' -> '.join(p.stem for p in _seen)})")
    data = read_yaml(path, where)
    if data is None:
        data = LineMap()
    v = _Validator(where)
    v.keys(data, TOP_KEYS, "")
    suite = Suite(name=path.stem, path=str(path), description=str(data.get("description") or ""))
    if data.get("choice_template") is not None:
        from emidbench.benchmarks.choices import check_template

        try:
            suite.choice_template = check_template(data["choice_template"], "choice_template")
        except UserError as e:
            raise v.error(data, "choice_template", str(e)) from None
    for inc in v.list_of(data, "include", str, ""):
        try:
            _locate(inc, path.parent)
        except UserError as e:  # named where it is included (the file's own errors name the file)
            raise v.error(data, "include", f"include: {e}") from None
        suite.parts.append(load_suite(inc, _seen + (path.resolve(),), path.parent))
    syn = data.get("synthetic")
    if syn is not None:
        v.keys(syn, SYNTHETIC_KEYS, "synthetic.", data, "synthetic")
        suite.grid = syn.get("grid", "full")
        if suite.grid not in GRIDS:
            raise v.error(syn, "grid", f"synthetic.grid must be one of {', '.join(GRIDS)}, not {suite.grid!r}")
        suite.visual = v.shift_list(syn, "visual")
        suite.text = v.shift_list(syn, "text")
    nat = data.get("natural")
    if nat is not None:
        v.keys(nat, NATURAL_KEYS, "natural.", data, "natural")
        suite.languages = v.list_of(nat, "languages", str, "natural.") or [ENGLISH]
        for lang in suite.languages:
            if not re.fullmatch(r"[A-Z][A-Za-z ]*", lang):
                raise v.error(nat, "languages", f"natural.languages: {lang!r} is not a language name "
                                                f"(capitalised English name, e.g. German)")
        suite.splits = v.list_of(nat, "splits", str, "natural.")
        for s in suite.splits:
            if s not in SPLITS:
                raise v.error(nat, "splits", f"unknown split {s!r} (use {', '.join(SPLITS)})")
    dom = data.get("domains")
    if dom is not None:
        suite.domains = v.domains(data, dom)
    for i, sc in enumerate(v.list_of(data, "scenarios", dict, ""), start=1):
        label = f"scenarios[{i}]"
        v.keys(sc, SCENARIO_KEYS, f"{label}.", data, "scenarios")
        name = sc.get("name")
        if name is not None and not (isinstance(name, str) and NAME_RE.fullmatch(name)):
            raise v.error(sc, "name", f"{label}.name {name!r}: use letters, digits and _ . + - only")
        vis = v.spec(sc, "visual", label)
        txt = v.spec(sc, "text", label)
        if vis is None and txt is None:
            raise v.error(sc, None, f"{label} has neither a visual nor a text shift")
        suite.custom.append((name, vis, txt, f"{where}:{sc.line}"))
    return suite


class _Validator:
    def __init__(self, where: str):
        self.where = where

    def error(self, node, key, message: str) -> UserError:
        line = None
        if isinstance(node, LineMap):
            line = node.key_lines.get(key, node.line) if key is not None else node.line
        elif isinstance(node, LineList):
            line = node.line
        return UserError(f"{self.where}{f':{line}' if line else ''}: {message}")

    def keys(self, d, allowed: set, prefix: str, parent=None, parent_key=None) -> None:
        if not isinstance(d, dict):
            what = prefix.rstrip(".") or "the suite"
            raise self.error(parent, parent_key, f"'{what}' must be a mapping (key: value), "
                                                 f"not {kind(d)}")
        for k in d:
            if k not in allowed:
                hint = did_you_mean(k, allowed, prefix) or f" (allowed: {', '.join(sorted(allowed))})"
                raise self.error(d, k, f"unknown key '{prefix}{k}'{hint}")

    def list_of(self, d, key: str, kind: type, prefix: str) -> list:
        items = d.get(key)
        if items is None:
            return []
        if not isinstance(items, list):
            raise self.error(d, key, f"'{prefix}{key}' must be a list, not {items!r}")
        for item in items:
            if not isinstance(item, kind) or isinstance(item, bool):
                raise self.error(items, None, f"'{prefix}{key}': {item!r} is not a {kind.__name__}")
        return list(items)

    def severity(self, kind: str, name: str, severity, node, key) -> int:
        from emidbench.shift.visual import check_corruption

        if not isinstance(severity, int) or isinstance(severity, bool):
            raise self.error(node, key, f"{kind} shift {name}: severity must be an integer, not {severity!r}")
        try:
            if kind == "visual":
                check_corruption(name, severity)
            else:
                from emidbench.shift.text import check_perturbation

                check_perturbation(name, severity)
        except UserError as e:
            raise self.error(node, key, str(e)) from None
        return severity

    def shift_list(self, syn, kind: str) -> list[tuple[str, int]]:
        out = []
        for i, item in enumerate(self.list_of(syn, kind, dict, "synthetic."), start=1):
            label = f"synthetic.{kind}[{i}]"
            self.keys(item, SHIFT_KEYS, f"{label}.", syn, kind)
            name = item.get("name")
            if not isinstance(name, str):
                raise self.error(item, "name" if "name" in item else None, f"{label} needs a name")
            sevs = self.list_of(item, "severities", int, f"{label}.")
            if not sevs:
                raise self.error(item, "severities" if "severities" in item else None,
                                 f"{label} ({name}) needs a non-empty list of severities")
            for sev in sevs:
                out.append((name, self.severity(kind, name, sev, item, "severities")))
        return out

    def domains(self, data, dom) -> DomainSetup:
        if dom == {} or dom is True:  # `domains:` with defaults only
            return DomainSetup(where=self.where)
        self.keys(dom, DOMAINS_KEYS, "domains.", data, "domains")
        setup = DomainSetup(where=self.where)
        try:
            if dom.get("id_domain") is not None:
                setup = setup.with_options(id_domain=dom["id_domain"])
            for key, parse in (("per_class", check_per_class), ("icl", parse_icl), ("icl_source", parse_icl_source)):
                if dom.get(key) is not None:
                    setup = replace(setup, **{key: parse(dom[key], f"domains.{key}")})
        except UserError as e:
            raise self.error(dom, next((k for k in dom if str(k) in str(e)), None), str(e)) from None
        return setup

    def spec(self, sc, kind: str, label: str) -> ShiftSpec | None:
        d = sc.get(kind)
        if d is None:
            return None
        self.keys(d, SPEC_KEYS, f"{label}.{kind}.", sc, kind)
        if not isinstance(d.get("name"), str) or "severity" not in d:
            raise self.error(d, None, f"{label}.{kind} needs a name and a severity")
        return ShiftSpec(d["name"], self.severity(kind, d["name"], d["severity"], d, "severity"))


# --------------------------------------------------------------------------- planning

def synthetic_name(base: str, visual: ShiftSpec | None, text: ShiftSpec | None) -> str:
    name = base
    if visual:
        name += f"_{visual.name}_{visual.severity}"
    if text:
        name += f"_{text.name}_{text.severity}"
    return name


def plan_scenarios(benchmark, suite, domains: list[str] | None = None, id_domain: str | None = None
                   ) -> list[ScenarioPlan]:
    """Every scenario of `suite` on `benchmark`, the ID set first and once.

    `plan_scenarios(benchmark, "paper-61")`: a Benchmark and a suite name, path or Suite.
    Also `plan_scenarios(suite, id_name, domains)` (a Suite, the ID set's name and the
    second visual domains' names), for planning without a benchmark at hand.
    """
    if isinstance(benchmark, Suite):
        suite_obj, id_name, domain_names = benchmark, str(suite), list(domains or [])
        domain_order = domain_names
    else:
        suite_obj = suite if isinstance(suite, Suite) else load_suite(suite)
        id_name, domain_names = benchmark.name, sorted(benchmark.domains)
        domain_order = list(benchmark.domains)  # a domain suite: the benchmark's own order
    plans = [ScenarioPlan(id_name, "id")]
    by_name = {id_name: plans[0]}

    def add(p: ScenarioPlan, where: str) -> None:
        old = by_name.get(p.name)
        if old is None:
            by_name[p.name] = p
            plans.append(p)
        elif not old.same_work(p):
            raise UserError(f"{where}: scenario name {p.name!r} is used for two different shifts")

    for s in suite_obj.flatten():
        visual = [None] + [ShiftSpec(n, k) for n, k in s.visual]
        text = [None] + [ShiftSpec(n, k) for n, k in s.text]
        for v in visual:
            for t in text:
                if (v is None and t is None) or (s.grid == "separate" and v is not None and t is not None):
                    continue
                add(ScenarioPlan(synthetic_name(id_name, v, t), "synthetic", v, t), s.path)
        for lang in s.languages:
            if lang != ENGLISH:
                add(ScenarioPlan(f"{id_name}_{lang}", "natural", language=lang), s.path)
        for domain in domain_names:
            for split in s.splits:
                for lang in s.languages or [ENGLISH]:
                    add(ScenarioPlan(f"{domain}_{split}_{lang}", "natural", domain=domain, language=lang,
                                     split=split), s.path)
        for name, v, t, where in s.custom:
            add(ScenarioPlan(name or synthetic_name(id_name, v, t), "custom", v, t), where)
    setup = suite_obj.domain_setup()
    if setup is not None:
        for p in domain_plans(id_name, setup, id_domain or setup.id_domain, domain_order):
            add(p, setup.where)
    return plans


def domain_plans(id_name: str, setup: DomainSetup, id_domain: str | None, others: list[str]) -> list[ScenarioPlan]:
    """A domain suite's scenarios beyond the ID set: each other domain, then the ICL ones
    (per domain, per K, per source; the ID domain's with source `id` only)."""
    plans = [ScenarioPlan(f"{id_name}_{scenario_domain_name(d)}", "natural", domain=d, domain_name=d) for d in others]
    id_label = id_domain if id_domain is not None else id_name
    for d in [None, *others]:
        for k in setup.icl:
            for src in setup.icl_source:
                if d is None and src != "id":
                    continue
                name = f"{id_name}_{scenario_domain_name(d if d is not None else id_label)}_icl{k}_{src}"
                plans.append(ScenarioPlan(name, "natural", domain=d, icl=k,
                                          icl_source=src, domain_name=d if d is not None else id_domain))
    return plans
