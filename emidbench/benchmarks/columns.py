"""Rows (dicts from JSONL, Parquet or `datasets`) -> Samples, through a column mapping."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from emidbench.benchmarks.base import Sample
from emidbench.common.errors import UserError

# Our field -> the column it comes from. `translations` is a prefix: columns named
# `question_<Language>` become Sample.translations[<Language>].
DEFAULT_COLUMNS = {
    "question_id": "question_id",
    "image": "image",
    "text": "question",
    "reference": "reference",
    "category": "category",
    "context": "context",
}
FIELDS = tuple(DEFAULT_COLUMNS)
REQUIRED = ("question_id", "image", "text", "reference")
TRANSLATION_PREFIX = "question_"


def parse_columns(spec: str | dict | None) -> dict:
    """`text=question,reference=gpt_answer` (CLI) or a dict (config) -> full mapping."""
    mapping = dict(DEFAULT_COLUMNS)
    if not spec:
        return mapping
    items = spec.items() if isinstance(spec, dict) else (
        part.split("=", 1) if "=" in part else (part, None) for part in str(spec).split(",") if part.strip()
    )
    for key, col in items:
        key = key.strip()
        if key not in FIELDS or not col:
            raise UserError(
                f"bad column mapping {key!r}={col!r}: expected FIELD=COLUMN with FIELD in {', '.join(FIELDS)}"
            )
        mapping[key] = str(col).strip()
    return mapping


def image_bytes(value: Any, resolve_path: Callable[[str], bytes], where: str) -> tuple[bytes, str]:
    """An image cell -> (encoded bytes, a name). Accepts `datasets` Image cells with
    decode=False ({'bytes', 'path'}), raw bytes, or a path string."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"]), str(value.get("path") or "")
        if value.get("path"):
            return resolve_path(str(value["path"])), str(value["path"])
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), ""
    if isinstance(value, str) and value:
        return resolve_path(value), value
    raise UserError(f"{where}: no usable image (got {type(value).__name__})")


def rows_to_samples(
    rows: Iterable[dict],
    mapping: dict,
    resolve_path: Callable[[str], bytes],
    where: str,
    context_of: Callable[[dict, Sample], str | None] | None = None,
) -> list[Sample]:
    samples = []
    for i, row in enumerate(rows, start=1):
        at = f"{where}: row {i}"
        for field in REQUIRED:
            if mapping[field] not in row or row[mapping[field]] is None:
                have = ", ".join(sorted(row)) or "none"
                raise UserError(f"{at}: missing column {mapping[field]!r} for {field} (columns: {have}; map with --columns)")
        qid = row[mapping["question_id"]]
        data, name = image_bytes(row[mapping["image"]], resolve_path, f"{at} (question_id {qid})")
        translations = {
            k[len(TRANSLATION_PREFIX):]: str(v)
            for k, v in row.items()
            if k.startswith(TRANSLATION_PREFIX) and k not in mapping.values() and v
        }
        sample = Sample(
            question_id=qid,
            image=data,
            image_name=name or f"{qid}",
            text=str(row[mapping["text"]]),
            reference=str(row[mapping["reference"]]),
            category=_opt_str(row.get(mapping["category"])),
            context=_opt_str(row.get(mapping["context"])),
            translations=translations,
        )
        if context_of is not None and sample.context is None:
            ctx = context_of(row, sample)
            if ctx is not None:
                sample = replace(sample, context=ctx)
        samples.append(sample)
    return samples


def _opt_str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def read_under(root: Path, rel: str, where: str) -> bytes:
    """Read `rel` inside `root`, refusing paths that escape it."""
    base = root.resolve()
    path = (base / rel).resolve()
    if path != base and base not in path.parents:
        raise UserError(f"{where}: image path {rel!r} escapes {root}")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{where}: image {rel!r} not found under {root}") from None
    except OSError as e:
        raise UserError(f"{where}: cannot read image {rel!r} ({e})") from None
