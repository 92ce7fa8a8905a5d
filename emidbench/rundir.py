"""The run directory: the only interface between stages.

    RUN/shifts/manifest.json          suite, benchmark, seed, one entry per scenario
    RUN/shifts/<scenario>.jsonl       LLaVA question format + reference (+ context)
    RUN/shifts/images/<sha256>.<ext>  every distinct image once, named by content hash
    RUN/responses/<model>/<scenario>.jsonl   LLaVA answer format
    RUN/scores/<model>/...            written by `score`
    RUN/report/<model>/...            written by `report`
    RUN/cache/...                     content-addressed caches (embeddings, answers, judge)

Whole files are written atomically (temp file in the same folder + os.replace), so a
killed process leaves either the old file or the new one. Files that grow item by item
(responses) are append-only JSONL: a torn last line (no trailing newline) is dropped on
read and overwritten on the next append.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from emidbench.errors import UserError

MANIFEST_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files, results should get the usual 0666 & ~umask
FAMILIES = ("id", "synthetic", "natural", "custom")
MODALITIES = ("none", "visual", "text", "joint")


# --------------------------------------------------------------------------- writes

def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, UTF-8, so equal content gives equal bytes."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def jsonl_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def atomic_write_jsonl(path: Path, records: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(jsonl_line(r) for r in records))


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write `data` atomically unless the file already holds exactly these bytes (mtime
    kept: a rerun that changes nothing touches nothing); True if written."""
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


# --------------------------------------------------------------------------- reads

def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


def iter_jsonl(path: Path, allow_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record). Blank lines are skipped.

    allow_torn_tail: for append-only files, a last line without its newline is a write
    that was cut off; it is dropped instead of reported.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    for i, raw in enumerate(lines, start=1):
        if i == len(lines) and (not torn or allow_torn_tail):
            return
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path}:{i}: malformed JSON line ({e})") from None
        if not isinstance(rec, dict):
            raise UserError(f"{path}:{i}: expected a JSON object per line")
        yield i, rec


def read_jsonl(path: Path, allow_torn_tail: bool = False) -> list[dict]:
    return [rec for _, rec in iter_jsonl(path, allow_torn_tail)]


class JsonlAppender:
    """Append-only JSONL, one flushed+fsynced write per batch.

    On open, a torn tail left by a killed writer is cut off, so the next append starts
    on a fresh line and no reader ever sees a half record.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                with open(self.path, "r+b") as f:
                    f.truncate(keep)
        self._f = open(self.path, "ab")

    def write(self, records: Iterable[dict]) -> None:
        payload = "".join(jsonl_line(r) for r in records).encode("utf-8")
        if payload:
            self._f.write(payload)
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- names

_SLUG_BAD = re.compile(r"[^A-Za-z0-9._+-]+")


def model_slug(model: str, name: str | None = None) -> str:
    """Filesystem-safe model name: --name if given, else the last component of the
    hub id or path (`llava-hf/llava-1.5-7b-hf` -> `llava-1.5-7b-hf`)."""
    raw = name if name else str(model).rstrip("/\\").replace("\\", "/").split("/")[-1]
    raw = raw.split(":")[-1] if not name and ":" in raw else raw
    slug = _SLUG_BAD.sub("_", raw).strip("._")
    if not slug:
        raise UserError(f"cannot derive a model name from {model!r}; pass --name")
    return slug


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- manifest

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


# --------------------------------------------------------------------------- the run

class RunDir:
    """Paths and typed access to one run directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    # paths
    @property
    def shifts(self) -> Path:
        return self.root / "shifts"

    @property
    def images(self) -> Path:
        return self.shifts / "images"

    @property
    def manifest_path(self) -> Path:
        return self.shifts / "manifest.json"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def scenario_path(self, scenario: str) -> Path:
        return self.shifts / f"{scenario}.jsonl"

    def responses_dir(self, model: str) -> Path:
        return self.root / "responses" / model

    def responses_path(self, model: str, scenario: str) -> Path:
        return self.responses_dir(model) / f"{scenario}.jsonl"

    def scores_dir(self, model: str) -> Path:
        return self.root / "scores" / model

    def report_dir(self, model: str) -> Path:
        return self.root / "report" / model

    def models(self) -> list[str]:
        """Models with at least one answer file (an eval that failed to start leaves only
        its eval.json)."""
        d = self.root / "responses"
        return sorted(p.name for p in d.iterdir() if p.is_dir() and any(p.glob("*.jsonl"))) if d.is_dir() else []

    # manifest
    def has_shifts(self) -> bool:
        return self.manifest_path.is_file()

    def shifts_complete(self) -> bool:
        """The manifest, every scenario file it lists and every image those name exist (a
        stat each: cheap enough for every resume; `emidbench shift` also checks contents)."""
        try:
            paths = [self.scenario_path(s.name) for s in self.read_manifest().scenarios]
            return all(p.is_file() and all((self.images / str(r.get("image"))).is_file() for _, r in iter_jsonl(p))
                       for p in paths)
        except UserError:  # no manifest, or a damaged file: not complete
            return False

    def read_manifest(self) -> Manifest:
        if not self.has_shifts():
            raise UserError(f"{self.root}: no shifted data yet ({self.manifest_path} missing); run `emidbench shift` first")
        return Manifest.from_json(read_json(self.manifest_path), str(self.manifest_path))

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write_json(self.manifest_path, manifest.to_json())

    # scenario files
    def read_scenario(self, scenario: str) -> list[dict]:
        path = self.scenario_path(scenario)
        records = read_jsonl(path)
        seen: set = set()
        for i, r in enumerate(records, start=1):
            for key in ("question_id", "image", "text"):
                if key not in r:
                    raise UserError(f"{path}: record {i} has no {key!r}")
            if r["question_id"] in seen:
                raise UserError(f"{path}: duplicate question_id {r['question_id']!r}")
            seen.add(r["question_id"])
        return records

    def write_scenario(self, scenario: str, records: list[dict]) -> None:
        atomic_write_jsonl(self.scenario_path(scenario), records)

    # images
    def put_image(self, data: bytes, ext: str) -> str:
        """Store encoded image bytes once under their content hash; return the name
        relative to RUN/shifts/images/."""
        name = f"{content_hash(data)}.{ext.lstrip('.').lower()}"
        write_if_changed(self.images / name, data)  # a damaged copy is repaired, an intact one left alone
        return name

    def image_intact(self, name: str) -> bool:
        """The stored image exists and its bytes still hash to its name."""
        path = self.images / name
        return path.is_file() and content_hash(path.read_bytes()) == name.split(".")[0]

    def image_path(self, name: str) -> Path:
        path = (self.images / name).resolve()
        if self.images.resolve() not in path.parents:
            raise UserError(f"image path {name!r} escapes {self.images}")
        return path
