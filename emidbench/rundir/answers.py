"""Answer records: RUN/responses/<model>/<scenario>.jsonl in LLaVA's answer format
(question_id, prompt, text, answer_id, model_id, metadata). A failed generation is
recorded with text "" and metadata.error; `answered` is the one definition of which
questions have a usable answer, for eval's resume, the pipeline and score."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.io import iter_jsonl, jsonl_line, write_if_changed


def answer_id(model: str, scenario: str, question_id, text: str) -> str:
    """Deterministic answer ids (LLaVA's are random shortuuids): same answer, same bytes."""
    return hashlib.sha256(json.dumps([model, scenario, question_id, text]).encode()).hexdigest()[:22]


def is_failed(record: dict) -> bool:
    return bool((record.get("metadata") or {}).get("error"))


def merge_answers(path: Path, questions: list[dict], sources: list[Path] = (), keep=None) -> list[dict]:
    """Rewrite `path` with one record per question, in question order, from the records of
    `path` and `sources` (later ones win, except that a failure never replaces an answer),
    keeping only records for which keep(record, question) is true; then delete `sources`.
    Written atomically (a kill leaves the old file or the new one), and only if it changes."""
    best: dict = {}
    for src in [path, *sources]:
        if not Path(src).is_file():
            continue
        for _, rec in iter_jsonl(src, allow_torn_tail=True):
            qid = rec.get("question_id")
            old = best.get(qid)
            if old is not None and is_failed(rec) and not is_failed(old):
                continue
            best[qid] = rec
    records = []
    for q in questions:
        rec = best.get(q["question_id"])
        if rec is not None and (keep is None or keep(rec, q)):
            records.append(rec)
    if Path(path).is_file() or records:
        write_if_changed(path, "".join(jsonl_line(r) for r in records).encode("utf-8"))
    for src in sources:
        Path(src).unlink(missing_ok=True)
    return records


def read_answers(path: Path) -> tuple[dict[str, dict], set[str]]:
    """One answer file, keyed by str(question_id): the usable answer records, and the ids
    whose only records are failures (an answer beats a failure, as merge_answers keeps
    them). A torn last line is a write cut off by a kill and is dropped; a line with no
    question_id or no text is bad input. An absent file answers nothing."""
    answers: dict[str, dict] = {}
    failed: set[str] = set()
    if not Path(path).is_file():
        return answers, failed
    for line, rec in iter_jsonl(path, allow_torn_tail=True):
        if "question_id" not in rec:
            raise UserError(f"{path}:{line}: an answer line needs 'question_id'")
        qid = str(rec["question_id"])
        if is_failed(rec):
            if qid not in answers:
                failed.add(qid)
            continue
        if not isinstance(rec.get("text"), str):
            raise UserError(f"{path}:{line}: answer {rec['question_id']!r} has no text")
        answers[qid] = rec
        failed.discard(qid)
    return answers, failed


def answered(path: Path) -> set[str]:
    """The question ids (as str) with a usable answer in one answer file."""
    return set(read_answers(path)[0])
