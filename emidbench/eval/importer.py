"""`emidbench import-responses DIR --model NAME`: answers someone else generated (the
paper's released ones, another harness's) -> RUN/responses/NAME/, ready to score.

Files are named `<scenario>_<NAME>.jsonl` in LLaVA's answer format (one
{"question_id", "text", ...} per line). Scenario names contain underscores and some are
prefixes of others (`llava_bench_coco`, `llava_bench_coco_frost_3`), so a file matches a
scenario only when its name is exactly `<scenario>_<NAME>.jsonl` for a scenario name — or
alias, such as the ID set's `llava_bench_coco_English` in natural suites — of the run's
manifest. Files of other models in DIR are ignored; files of this model for scenarios
the run does not have are listed in the summary, not imported.

Every matched file is validated before anything is written (a bad line is one UserError
naming file:line): each line a JSON object with a question_id of that scenario (ids
compared as written, else as text: "3" matches 3) and a string `text`, no question twice.
Each scenario's answers are written atomically in question order; questions a file does
not answer stay unanswered (the summary counts them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.io import atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json
from emidbench.rundir import RunDir, model_slug
from emidbench.rundir.answers import answer_id


@dataclass
class ImportSummary:
    model: str  # the folder under RUN/responses/
    scenarios: dict = field(default_factory=dict)  # scenario -> answers imported
    missing: dict = field(default_factory=dict)  # scenario -> its questions the file did not answer
    not_found: list = field(default_factory=list)  # scenarios of the run with no file in DIR
    ignored: list = field(default_factory=list)  # "file: why" for files of this model not imported

    @property
    def files(self) -> int:
        return len(self.scenarios)

    def line(self) -> str:
        n = sum(self.scenarios.values())
        text = f"import {self.model}: {n} answers in {self.files} scenarios"
        gaps = sum(self.missing.values())
        if gaps:
            text += f", {gaps} questions without an answer"
        if self.not_found:
            text += f"; no file for {len(self.not_found)} scenarios ({', '.join(self.not_found[:5])}" + \
                    (", ...)" if len(self.not_found) > 5 else ")")
        if self.ignored:
            text += f"; ignored {len(self.ignored)} files ({'; '.join(self.ignored[:3])}" + \
                    ("; ...)" if len(self.ignored) > 3 else ")")
        return text


def import_responses(source: Path, run: Path, model: str) -> ImportSummary:
    rd = RunDir(run)
    manifest = rd.read_manifest()
    source = Path(source)
    if not source.is_dir():
        raise UserError(f"{source}: not a folder of answer files")
    slug = model_slug(model, model)
    out_dir = rd.responses_dir(slug)
    _check_previous(out_dir)

    known = {s.name: s.name for s in manifest.scenarios}
    for s in manifest.scenarios:
        alias = (s.extra or {}).get("alias")
        if alias and alias not in known:
            known[alias] = s.name
    suffix = f"_{model}.jsonl"
    summary = ImportSummary(slug)
    chosen: dict[str, Path] = {}
    for path in sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(suffix)):
        stem = path.name[: -len(suffix)]
        scenario = known.get(stem)
        if scenario is None:
            summary.ignored.append(f"{path.name}: no scenario {stem!r} in this run")
        elif scenario in chosen:
            # the ID set under its own name and under its alias: the own name wins
            keep, drop = (chosen[scenario], path) if chosen[scenario].name == f"{scenario}{suffix}" else \
                (path, chosen[scenario])
            chosen[scenario] = keep
            summary.ignored.append(f"{drop.name}: same scenario as {keep.name}")
        else:
            chosen[scenario] = path
    if not chosen:
        example = f"{manifest.scenarios[0].name}{suffix}"
        raise UserError(f"{source}: no file named <scenario>_{model}.jsonl for a scenario of this run "
                        f"(e.g. {example}); found {len(summary.ignored)} files ending in {suffix}")

    order = [s.name for s in manifest.scenarios]
    parsed = {sc: _read_answers(path, sc, rd.read_scenario(sc), model)
              for sc, path in sorted(chosen.items(), key=lambda kv: order.index(kv[0]))}
    for sc, (records, n_questions) in parsed.items():
        atomic_write_jsonl(rd.responses_path(slug, sc), records)
        summary.scenarios[sc] = len(records)
        if len(records) < n_questions:
            summary.missing[sc] = n_questions - len(records)
    summary.not_found = [n for n in order if n not in chosen]
    atomic_write_json(out_dir / "eval.json", {
        "model": model, "name": slug, "backend": "imported", "source": str(source.resolve()),
        "files": {sc: chosen[sc].name for sc in parsed}})
    return summary


def _check_previous(out_dir: Path) -> None:
    path = out_dir / "eval.json"
    if path.is_file():
        prev = read_json(path)
        if isinstance(prev, dict) and prev.get("backend") not in (None, "imported"):
            raise UserError(f"{out_dir} holds answers `emidbench eval` generated ({prev.get('model')!r}); import "
                            "under another --model name")


def _read_answers(path: Path, scenario: str, questions: list[dict], model: str) -> tuple[list[dict], int]:
    ids = {q["question_id"]: q for q in questions}
    by_text = {str(k): k for k in ids}
    seen: dict = {}
    for line, rec in iter_jsonl(path):
        if "question_id" not in rec:
            raise UserError(f"{path}:{line}: no question_id")
        if not isinstance(rec.get("text"), str):
            raise UserError(f"{path}:{line}: no answer text (\"text\" must be a string)")
        qid = rec["question_id"]
        if isinstance(qid, bool) or not isinstance(qid, (str, int, float)):
            raise UserError(f"{path}:{line}: question_id must be a string or a number, not {qid!r}")
        if qid not in ids:
            qid = by_text.get(str(rec["question_id"]))
        if qid is None:
            raise UserError(f"{path}:{line}: question_id {rec['question_id']!r} is not a question of scenario "
                            f"{scenario} ({len(questions)} questions)")
        if qid in seen:
            raise UserError(f"{path}:{line}: question_id {qid!r} answered twice (first on line {seen[qid][0]})")
        seen[qid] = (line, rec)
    records = []
    for q in questions:
        if q["question_id"] not in seen:
            continue
        qid = q["question_id"]
        rec = seen[qid][1]
        meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
        aid = rec.get("answer_id") or answer_id(model, scenario, qid, rec["text"])
        records.append({"question_id": qid, "prompt": str(rec.get("prompt", "")), "text": rec["text"],
                        "answer_id": str(aid), "model_id": str(rec.get("model_id") or model),
                        "metadata": {**meta, "scenario": scenario, "imported_from": path.name}})
    return records, len(questions)
