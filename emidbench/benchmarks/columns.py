"""Rows (dicts from JSONL, Parquet or `datasets`) -> Samples, through a column mapping.

A row with a `label` (or a `choices`) column is a choice sample (benchmarks/choices.py):
its options are the row's `choices` list, else the benchmark's class names (a `datasets`
ClassLabel feature, or a registered option list, or the sorted distinct names of a label
column of strings); the label is an option's index or its name, and its text becomes the
sample's reference. Without a question column the question is the default stem ("What is
in this image?"), without a question_id column the row's index. A `domain` column fills
Sample.domain (a ClassLabel's name for a number)."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from emidbench.benchmarks.base import ImageRef, Sample, image_file
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
    # choice tasks
    "label": "label",
    "domain": "domain",
    "choices": "choices",
}
FIELDS = tuple(DEFAULT_COLUMNS)
REQUIRED = ("question_id", "image", "text", "reference")
CHOICE_REQUIRED = ("image",)
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


def image_of(value: Any, resolve_path: Callable[[str, str], ImageRef], where: str) -> tuple[bytes | ImageRef, str]:
    """An image cell -> (the image: bytes or a ref, a name). Accepts a ref (a loader's lazy
    row image), `datasets` Image cells with decode=False ({'bytes', 'path'}), raw bytes, or
    a path string (resolve_path(path, where) gives its ref)."""
    if isinstance(value, ImageRef):
        return value, value.name
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"]), str(value.get("path") or "")
        if value.get("path"):
            return resolve_path(str(value["path"]), where), str(value["path"])
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), ""
    if isinstance(value, str) and value:
        return resolve_path(value, where), value
    raise UserError(f"{where}: no usable image (got {type(value).__name__})")


def lazy_images(rows: Iterable[dict], column: str, read_cell: Callable[[int], Any]) -> Iterator[dict]:
    """Rows whose embedded images (a {'bytes': ...} cell or raw bytes) are replaced by refs
    that read row i's cell again when needed (`read_cell(i)`, from a table on disk or in
    Arrow memory), so the loaded benchmark holds no Python copy of its images. Path cells
    and other values pass as they are."""
    for i, row in enumerate(rows):
        cell = row.get(column)
        name = str(cell.get("path") or "") if isinstance(cell, dict) else ""
        if (isinstance(cell, dict) and cell.get("bytes")) or isinstance(cell, (bytes, bytearray)):
            row = {**row, column: ImageRef(functools.partial(_cell_bytes, read_cell, i), name)}
        yield row


def _cell_bytes(read_cell: Callable[[int], Any], i: int) -> bytes:
    cell = read_cell(i)
    return bytes(cell["bytes"] if isinstance(cell, dict) else cell)


def rows_to_samples(
    rows: Iterable[dict],
    mapping: dict,
    resolve_path: Callable[[str, str], ImageRef],
    where: str,
    context_of: Callable[[dict, Sample], str | None] | None = None,
    class_names: dict[str, list[str]] | None = None,
    choice_list: list[str] | None = None,
    skip_multi_label: bool = False,
    skipped: list | None = None,
) -> list[Sample]:
    """class_names: {column: names} of the ClassLabel columns (label, domain); choice_list:
    the options of every choice row without its own (a registered set's list, or the label
    column's distinct names); skip_multi_label: a row whose label is a list of several
    labels is left out (its row number appended to `skipped`) instead of refused."""
    samples = []
    class_names = class_names or {}
    for i, row in enumerate(rows, start=1):
        at = f"{where}: row {i}"
        if _is_choice_row(row, mapping):
            sample = _choice_sample(row, i, at, mapping, resolve_path, class_names, choice_list, skip_multi_label)
            if sample is None:
                if skipped is not None:
                    skipped.append(i)
                continue
            samples.append(sample)
            continue
        for field in REQUIRED:
            if mapping[field] not in row or row[mapping[field]] is None:
                have = ", ".join(sorted(row)) or "none"
                raise UserError(f"{at}: missing column {mapping[field]!r} for {field} (columns: {have}; map with --columns)")
        qid = row[mapping["question_id"]]
        data, name = image_of(row[mapping["image"]], resolve_path, f"{at} (question_id {qid})")
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


def _is_choice_row(row: dict, mapping: dict) -> bool:
    return row.get(mapping["label"]) is not None or row.get(mapping["choices"]) is not None


def _choice_sample(row: dict, i: int, at: str, mapping: dict, resolve_path, class_names: dict,
                   choice_list: list[str] | None, skip_multi_label: bool) -> Sample | None:
    from emidbench.benchmarks.choices import DEFAULT_STEM, normalize

    if row.get(mapping["image"]) is None:
        have = ", ".join(sorted(row)) or "none"
        raise UserError(f"{at}: missing column {mapping['image']!r} for image (columns: {have}; map with --columns)")
    qid = row.get(mapping["question_id"])
    qid = i - 1 if qid is None else qid  # the row's index in its split
    at = f"{at} (question_id {qid})"
    label_col = mapping["label"]
    own = row.get(mapping["choices"])
    if own is not None:
        if not (isinstance(own, (list, tuple)) and len(own) >= 2 and all(isinstance(c, str) and c.strip() for c in own)):
            raise UserError(f"{at}: column {mapping['choices']!r} must be a list of at least 2 option texts, "
                            f"not {own!r}")
        choices = [str(c) for c in own]
    else:
        choices = choice_list or class_names.get(label_col)
    names = class_names.get(label_col)
    label = row.get(label_col)
    if isinstance(label, (list, tuple)):  # a multi-label column (NIH ChestX-ray14): one label or none
        if len(label) != 1:
            if skip_multi_label:
                return None
            raise UserError(f"{at}: label column {label_col!r} holds {len(label)} labels; a choice task needs "
                            "exactly one (keep the single-label rows)")
        label = label[0]
    if label is None:
        raise UserError(f"{at}: no label (column {label_col!r}; map it with --columns label=COLUMN)")
    if not choices:
        raise UserError(f"{at}: label {label!r} but no options: the dataset names no classes (no ClassLabel "
                        f"feature) and has no {mapping['choices']!r} column")
    if isinstance(label, bool) or not isinstance(label, (int, str)):
        raise UserError(f"{at}: label {label!r} is neither an option's index nor its name")
    if isinstance(label, int) and own is None and names and choice_list:
        # a registered option list (the paper's order and spelling) over the dataset's class
        # names: the label's class name, matched to its option below
        if not 0 <= label < len(names):
            raise UserError(f"{at}: label {label} is outside the {len(names)} class names (0..{len(names) - 1})")
        label = names[label]
    if isinstance(label, int):
        if not 0 <= label < len(choices):
            raise UserError(f"{at}: label {label} is outside the {len(choices)} choices (0..{len(choices) - 1})")
        reference = choices[label]
    elif label in choices:
        reference = label
    elif normalize(label) in (normal := [normalize(c) for c in choices]):
        reference = choices[normal.index(normalize(label))]  # "Alarm Clock" is the option "Alarm_Clock"
    else:
        shown = ", ".join(map(repr, choices[:8])) + (", ..." if len(choices) > 8 else "")
        raise UserError(f"{at}: label {label!r} is not one of the choices ({shown})")
    data, name = image_of(row[mapping["image"]], resolve_path, at)
    text = row.get(mapping["text"])
    domain = row.get(mapping["domain"])
    if isinstance(domain, int) and not isinstance(domain, bool) and mapping["domain"] in class_names:
        names = class_names[mapping["domain"]]
        if not 0 <= domain < len(names):
            raise UserError(f"{at}: domain {domain} is outside the {len(names)} domain names")
        domain = names[domain]
    translations = {k[len(TRANSLATION_PREFIX):]: str(v) for k, v in row.items()  # of the stem
                    if k.startswith(TRANSLATION_PREFIX) and k not in mapping.values() and v}
    return Sample(question_id=qid, image=data, image_name=name or f"{qid}",
                  text=str(text) if text not in (None, "") else DEFAULT_STEM, reference=reference,
                  category=_opt_str(row.get(mapping["category"])), context=_opt_str(row.get(mapping["context"])),
                  translations=translations, choices=tuple(choices), domain=_opt_str(domain))


def label_choices(values: Iterable) -> list[str] | None:
    """The options of a label column of names without class names: its distinct names,
    sorted (None when it holds numbers or lists: those need class names)."""
    names = {v for v in values if v is not None}
    return sorted(names) if names and all(isinstance(v, str) for v in names) else None


def _opt_str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


class ImageFolder:
    """Image paths relative to a folder -> refs (one per file, shared by the questions that
    name it); a path that escapes the folder or names no file is refused at load."""

    def __init__(self, root: Path):
        self.root, self.base = Path(root), Path(root).resolve()
        self.refs: dict[Path, ImageRef] = {}

    def ref(self, rel: str, where: str) -> ImageRef:
        path = (self.base / rel).resolve()
        if path != self.base and self.base not in path.parents:
            raise UserError(f"{where}: image path {rel!r} escapes {self.root}")
        if path not in self.refs:
            if not path.is_file():
                raise UserError(f"{where}: image {rel!r} not found under {self.root}")
            self.refs[path] = image_file(path, rel, where)
        return self.refs[path]
