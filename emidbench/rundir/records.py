"""The stages' record files, typed and versioned: what a stage ran with and what it did.

    RUN/responses/<model>/eval.json   EvalRecord   written by eval (and import-responses)
    RUN/scores/<model>/score.json     ScoreRecord  written by score
    RUN/pipeline.json                 PipelineRecord  written by `emidbench run`

Readers accept a record without "version" (files written before records were versioned)
as version 1; a newer version than this code knows is refused with one line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emidbench.common.errors import UserError
from emidbench.common.io import atomic_write_json, read_json

RECORD_VERSION = 1

# "timings" (eval.json, score.json; added within version 1: a reader that does not know
# it ignores it, a record without it reads as {}/None) = {"steps": {step: wall seconds},
# "total": wall seconds, "unit": "wall seconds"}: where the stage's time went, by its
# named steps (score: emidbench.score.stage.STEPS; eval: emidbench.eval.stage.STEPS).
# Wall times differ from run to run: the one field of a record that is not reproducible.


def _from_json(cls, d: Any, where: Path, what: str, fix: str = ""):
    """A record dataclass from its JSON object: version checked, unknown keys ignored (a
    newer minor field), one line for anything else."""
    if not isinstance(d, dict):
        raise UserError(f"{where}: not {what} (a JSON object){fix}")
    _check_version(d, where)
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in d.items() if k in known})
    except TypeError as e:
        raise UserError(f"{where}: malformed {what} ({e}){fix}") from None


def _check_version(d: dict, where: Path) -> None:
    version = d.get("version", 1)
    if not isinstance(version, int) or version > RECORD_VERSION:
        raise UserError(f"{where}: record version {version!r} is newer than this emidbench reads "
                        f"({RECORD_VERSION}); upgrade emidbench")


@dataclass
class EvalRecord:
    """How one model's answers were made: by `emidbench eval` (backend, identity,
    generation settings, options, what the last run did) or imported (source, files)."""

    model: str
    name: str
    backend: str  # hf | openai | vllm | imported
    model_ref: str | None = None  # the resolved model (a local folder's absolute path, or the hub id)
    identity: str | None = None  # the response cache's model identity
    generation: dict | None = None  # max_new_tokens, temperature, system_prompt
    options: dict | None = None  # the backend's own record (device, dtype, ...; no secrets)
    eval_options: dict | None = None  # every EvalOptions field
    last_run: dict | None = None  # fallbacks (items redone alone, by reason), failed
    source: str | None = None  # imported: the answers folder
    files: dict | None = None  # imported: scenario -> answer file
    timings: dict | None = None  # the last run's wall seconds per step (see the note on "timings" above)
    version: int = RECORD_VERSION

    @property
    def imported(self) -> bool:
        return self.backend == "imported"

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def read(cls, path: Path) -> "EvalRecord | None":
        """The record at `path`, or None when there is none."""
        return _from_json(cls, read_json(path), Path(path), "an eval record") if Path(path).is_file() else None

    def write(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())


@dataclass
class ScoreRecord:
    """How one model's scores were made: the embedder, the estimator, the judge (each with
    its identity and whether it is a proxy), the settings, the generation settings of the
    answers, and what was counted."""

    model: str
    id_scenario: str
    embedder: dict
    estimator: dict
    judge: dict | None = None
    notes: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    generation: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # wall seconds per step (see the note on "timings" above)
    version: int = RECORD_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, path: Path) -> "ScoreRecord | None":
        """The record at `path`, or None when there is none."""
        path = Path(path)
        if not path.is_file():
            return None
        return _from_json(cls, read_json(path), path, "a score record", "; rerun `emidbench score`")

    def write(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())


@dataclass
class PipelineRecord:
    """RUN/pipeline.json: which stage of `emidbench run` finished with which fingerprint
    of its inputs and options (a rerun skips those whose fingerprint is unchanged)."""

    path: Path
    stages: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> "PipelineRecord":
        path = Path(path)
        if not path.exists():
            return cls(path)
        d = read_json(path)
        if not isinstance(d, dict):
            raise UserError(f"{path}: not a pipeline record (a JSON object); delete it to rerun every stage")
        _check_version(d, path)
        if "stages" in d:  # versioned
            stages = d["stages"]
        else:  # written before records were versioned: the stages at the top level
            stages = {k: v for k, v in d.items() if k != "version"}
        if not isinstance(stages, dict) or not all(isinstance(v, str) for v in stages.values()):
            raise UserError(f"{path}: not a pipeline record (stage -> fingerprint); delete it to rerun every stage")
        return cls(path, dict(stages))

    def is_done(self, key: str, fingerprint: str) -> bool:
        return self.stages.get(key) == fingerprint

    def mark(self, key: str, fingerprint: str) -> None:
        self.stages[key] = fingerprint
        atomic_write_json(self.path, {"version": RECORD_VERSION, "stages": self.stages})
