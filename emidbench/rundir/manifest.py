"""RUN/shifts/manifest.json: the shift stage's record of what it made: the suite, the
benchmark, the seed and, per scenario, its family, modality and shifts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from emidbench.common.errors import UserError

MANIFEST_VERSION = 1
FAMILIES = ("id", "synthetic", "natural", "custom")
MODALITIES = ("none", "visual", "text", "joint")


@dataclass
class ShiftSpec:
    name: str
    severity: int | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "severity": self.severity}


@dataclass
class ScenarioEntry:
    name: str
    family: str  # id | synthetic | natural | custom
    modality: str  # none | visual | text | joint
    visual: ShiftSpec | None
    text: ShiftSpec | None
    n: int
    file: str
    extra: dict = field(default_factory=dict)  # e.g. domain, language, split

    def to_json(self) -> dict:
        d = asdict(self)
        d["visual"] = self.visual.to_json() if self.visual else None
        d["text"] = self.text.to_json() if self.text else None
        return d

    @classmethod
    def from_json(cls, d: dict, where: str) -> "ScenarioEntry":
        try:
            entry = cls(
                name=str(d["name"]),
                family=str(d["family"]),
                modality=str(d["modality"]),
                visual=ShiftSpec(**d["visual"]) if d.get("visual") else None,
                text=ShiftSpec(**d["text"]) if d.get("text") else None,
                n=int(d["n"]),
                file=str(d["file"]),
                extra=dict(d.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: malformed scenario entry ({e!r})") from None
        if entry.family not in FAMILIES:
            raise UserError(f"{where}: scenario {entry.name}: unknown family {entry.family!r}")
        if entry.modality not in MODALITIES:
            raise UserError(f"{where}: scenario {entry.name}: unknown modality {entry.modality!r}")
        return entry


@dataclass
class Manifest:
    suite: str
    benchmark: str
    seed: int
    id_scenario: str
    scenarios: list[ScenarioEntry]
    extra: dict = field(default_factory=dict)  # e.g. natural-domain split, skipped items

    def to_json(self) -> dict:
        return {
            "version": MANIFEST_VERSION,
            "suite": self.suite,
            "benchmark": self.benchmark,
            "seed": self.seed,
            "id_scenario": self.id_scenario,
            "scenarios": [s.to_json() for s in self.scenarios],
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, d: Any, where: str) -> "Manifest":
        if not isinstance(d, dict):
            raise UserError(f"{where}: manifest must be a JSON object")
        try:
            m = cls(
                suite=str(d["suite"]),
                benchmark=str(d["benchmark"]),
                seed=int(d["seed"]),
                id_scenario=str(d["id_scenario"]),
                scenarios=[ScenarioEntry.from_json(s, where) for s in d["scenarios"]],
                extra=dict(d.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: malformed manifest ({e!r})") from None
        names = [s.name for s in m.scenarios]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise UserError(f"{where}: duplicate scenario names {sorted(dup)}")
        if m.id_scenario not in names:
            raise UserError(f"{where}: ID scenario {m.id_scenario!r} is not among the scenarios")
        return m

    def get(self, name: str) -> ScenarioEntry:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise UserError(f"no scenario {name!r} in this run (have: {', '.join(s.name for s in self.scenarios)})")


