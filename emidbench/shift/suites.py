"""Shift suites: YAML files (shifts/*.yaml, or the user's own) -> a list of scenarios.

A suite has any of:

    description: one line for `emidbench list`
    include: [other-suite, ...]          # their scenarios, the ID set once
    synthetic:                           # shifts of the ID set
      grid: full | separate              # full: every visual x every text shift (+ each
                                         #   alone); separate: each shift alone
      visual: [{name: frost, severities: [1, 3, 5]}, ...]
      text:   [{name: sr, severities: [4, 7]}, ...]
    natural:                             # languages and a second visual domain
      languages: [English, German, ...]
      splits: [easy, normal, hard]
    scenarios:                           # explicit ones (family "custom")
      - {visual: {name: fog, severity: 2}, text: {name: ocr, severity: 1}}

Names follow the paper's released datasets: <id>[_<visual>_<k>][_<text>_<k>] for
synthetic shifts, <id>_<Language> and <domain>_<split>_<Language> for natural ones.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from emidbench.errors import UserError
from emidbench.rundir import ShiftSpec

TOP_KEYS = {"description", "include", "synthetic", "natural", "scenarios"}
SYNTHETIC_KEYS = {"grid", "visual", "text"}
SHIFT_KEYS = {"name", "severities"}
NATURAL_KEYS = {"languages", "splits"}
SCENARIO_KEYS = {"visual", "text", "name"}
SPEC_KEYS = {"name", "severity"}
SPLITS = ("easy", "normal", "hard")
ENGLISH = "English"


@dataclass(frozen=True)
class ScenarioPlan:
    name: str
    family: str  # id | synthetic | natural | custom
    visual: ShiftSpec | None = None
    text: ShiftSpec | None = None
    domain: str | None = None  # None: the ID domain
    language: str = ENGLISH
    split: str | None = None

    @property
    def modality(self) -> str:
        v = self.visual is not None or self.domain is not None
        t = self.text is not None or self.language != ENGLISH
        return {(False, False): "none", (True, False): "visual", (False, True): "text", (True, True): "joint"}[(v, t)]

    def extra(self) -> dict:
        out: dict = {}
        if self.family == "natural" or self.domain:
            out.update(domain=self.domain, language=self.language, split=self.split)
        return out


@dataclass
class Suite:
    name: str
    description: str = ""
    visual: list = field(default_factory=list)  # [(name, severity)]
    text: list = field(default_factory=list)
    grid: str = "full"
    languages: list = field(default_factory=list)
    splits: list = field(default_factory=list)
    custom: list = field(default_factory=list)  # [(name, visual ShiftSpec, text ShiftSpec)]
    parts: list = field(default_factory=list)  # included suites


def suites_dir() -> Path:
    """The repository's shifts/ or, in a wheel, emidbench/_shifts."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "shifts", here / "_shifts"):
        if cand.is_dir():
            return cand
    return here.parent / "shifts"


def list_suites() -> dict[str, str]:
    return {p.stem: load_suite(p.stem).description for p in sorted(suites_dir().glob("*.yaml"))}


def load_suite(spec: str | Path, _seen: tuple = ()) -> Suite:
    path = Path(spec)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = suites_dir() / f"{spec}.yaml"
        if not path.is_file():
            known = ", ".join(p.stem for p in sorted(suites_dir().glob("*.yaml")))
            raise UserError(f"unknown suite {str(spec)!r} (built in: {known}; or pass a YAML file)")
    if path.resolve() in _seen:
        raise UserError(f"{path}: includes itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML ({getattr(e, 'problem', e)})") from None
    where = str(path)
    _keys(data, TOP_KEYS, where, "")
    suite = Suite(name=path.stem, description=str(data.get("description", "")))
    for inc in data.get("include") or []:
        suite.parts.append(load_suite(inc, _seen + (path.resolve(),)))
    syn = data.get("synthetic")
    if syn is not None:
        _keys(syn, SYNTHETIC_KEYS, where, "synthetic.")
        suite.grid = syn.get("grid", "full")
        if suite.grid not in ("full", "separate"):
            raise UserError(f"{where}: synthetic.grid must be 'full' or 'separate', not {suite.grid!r}")
        suite.visual = _shift_list(syn.get("visual") or [], where, "visual")
        suite.text = _shift_list(syn.get("text") or [], where, "text")
    nat = data.get("natural")
    if nat is not None:
        _keys(nat, NATURAL_KEYS, where, "natural.")
        suite.languages = [str(x) for x in nat.get("languages") or [ENGLISH]]
        suite.splits = [str(x) for x in nat.get("splits") or []]
        for s in suite.splits:
            if s not in SPLITS:
                raise UserError(f"{where}: unknown split {s!r} (use {', '.join(SPLITS)})")
    for i, sc in enumerate(data.get("scenarios") or [], start=1):
        _keys(sc, SCENARIO_KEYS, where, f"scenarios[{i}].")
        v = _spec(sc.get("visual"), where, f"scenarios[{i}].visual", "visual")
        t = _spec(sc.get("text"), where, f"scenarios[{i}].text", "text")
        if v is None and t is None:
            raise UserError(f"{where}: scenario {i} has neither a visual nor a text shift")
        suite.custom.append((sc.get("name"), v, t))
    return suite


def _keys(d, allowed: set, where: str, prefix: str) -> None:
    if not isinstance(d, dict):
        raise UserError(f"{where}: '{prefix.rstrip('.') or 'the suite'}' must be a mapping")
    for k in d:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), sorted(allowed), n=1)
            hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
            raise UserError(f"{where}: unknown key '{prefix}{k}'{hint}")


def _check(kind: str, name: str, severity, where: str) -> int:
    from emidbench.shift.text import check_perturbation
    from emidbench.shift.visual import check_corruption

    if not isinstance(severity, int) or isinstance(severity, bool):
        raise UserError(f"{where}: {kind} shift {name}: severity must be an integer, not {severity!r}")
    try:
        (check_corruption if kind == "visual" else check_perturbation)(name, severity)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    return severity


def _shift_list(items, where: str, kind: str) -> list[tuple[str, int]]:
    out = []
    for i, item in enumerate(items, start=1):
        _keys(item, SHIFT_KEYS, where, f"synthetic.{kind}[{i}].")
        if "name" not in item:
            raise UserError(f"{where}: synthetic.{kind}[{i}] has no name")
        for sev in item.get("severities") or []:
            out.append((str(item["name"]), _check(kind, str(item["name"]), sev, where)))
    return out


def _spec(d, where: str, label: str, kind: str) -> ShiftSpec | None:
    if d is None:
        return None
    _keys(d, SPEC_KEYS, where, f"{label}.")
    if "name" not in d or "severity" not in d:
        raise UserError(f"{where}: {label} needs name and severity")
    return ShiftSpec(str(d["name"]), _check(kind, str(d["name"]), d["severity"], where))


# --------------------------------------------------------------------------- planning

def synthetic_name(base: str, visual: ShiftSpec | None, text: ShiftSpec | None) -> str:
    name = base
    if visual:
        name += f"_{visual.name}_{visual.severity}"
    if text:
        name += f"_{text.name}_{text.severity}"
    return name


def plan_scenarios(suite: Suite, id_name: str, domains: list[str]) -> list[ScenarioPlan]:
    """Every scenario of the suite on a benchmark whose ID set is `id_name` and whose second
    visual domains are `domains`; the ID set first and once."""
    plans = [ScenarioPlan(id_name, "id")]
    seen = {id_name}

    def add(p: ScenarioPlan) -> None:
        if p.name not in seen:
            seen.add(p.name)
            plans.append(p)

    for s in _flatten(suite):
        visual = [None] + [ShiftSpec(n, k) for n, k in s.visual]
        text = [None] + [ShiftSpec(n, k) for n, k in s.text]
        for v in visual:
            for t in text:
                if (v is None and t is None) or (s.grid == "separate" and v is not None and t is not None):
                    continue
                add(ScenarioPlan(synthetic_name(id_name, v, t), "synthetic", v, t))
        if s.languages:
            for lang in s.languages:
                if lang != ENGLISH:
                    add(ScenarioPlan(f"{id_name}_{lang}", "natural", language=lang))
            for domain in domains:
                for split in s.splits:
                    for lang in s.languages:
                        add(ScenarioPlan(f"{domain}_{split}_{lang}", "natural", domain=domain, language=lang,
                                         split=split))
        for name, v, t in s.custom:
            add(ScenarioPlan(name or synthetic_name(id_name, v, t), "custom", v, t))
    return plans


def _flatten(suite: Suite) -> list[Suite]:
    out = []
    for part in suite.parts:
        out += _flatten(part)
    return out + [suite]
