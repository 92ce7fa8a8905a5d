"""`emidbench import-responses DIR --model NAME`: answers someone else generated (the
paper's released ones, another harness's) -> RUN/responses/NAME/, ready to score.

Files are named `<scenario>_<NAME>.jsonl` in LLaVA's answer format (one
{"question_id", "text", ...} per line). Scenario names contain underscores and some are
prefixes of others (`llava_bench_coco`, `llava_bench_coco_frost_3`), so a file matches a
scenario only when its name is exactly `<scenario>_<NAME>.jsonl` for a scenario name — or
alias, such as the ID set's `llava_bench_coco_English` in natural suites — of the run's
manifest. Files of other models in DIR are ignored; files of this model for scenarios
the run does not have are listed in the summary, not imported.

One file may serve several scenarios: the authors' In-the-Wild answers come one file per
language (`llava_bench_in_the_wild_German_<model>.jsonl`) for the easy, normal and hard
sets, as their code finds the file by stripping `_easy/_normal/_hard` from the scenario
name; each scenario takes the answers to its own questions (a scenario's own file wins).

Answers line up with questions: an answer's `prompt` (when present) is the question it
answered, and it must be the run's question for that question_id (whitespace-normalised).
Answers generated on the released shifted sets, imported into a run whose text shifts
were drawn anew, would pair each answer with a question the model never saw; the import
refuses that, with one line (how many, where, one example, what to do), writing nothing.

Every matched file is validated before anything is written (a bad line is one UserError
naming file:line): each line a JSON object with a question_id of a scenario it serves (ids
compared as written, else as text: "3" matches 3) and a string `text`, no question twice.
Each scenario's answers are written atomically in question order; questions a file does
not answer stay unanswered (the summary counts them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from emidbench.common.errors import UserError
from emidbench.common.io import atomic_write_jsonl, iter_jsonl
from emidbench.rundir import EVAL_RECORD, RunDir, model_slug
from emidbench.rundir.answers import answer_id
from emidbench.rundir.records import EvalRecord

SPLIT_RE = re.compile(r"_(?:easy|normal|hard)(?=_|$)")


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
    summary = ImportSummary(slug)
    chosen, shared = _choose_files(source, manifest, model, summary)
    order = [s.name for s in manifest.scenarios]
    questions = {sc: rd.read_scenario(sc) for sc in order if sc in chosen}
    parsed = _read_all(chosen, shared, order, questions, model, summary)
    for sc in order:
        if sc not in parsed:
            continue
        records = parsed[sc]
        atomic_write_jsonl(rd.responses_path(slug, sc), records)
        summary.scenarios[sc] = len(records)
        if len(records) < len(questions[sc]):
            summary.missing[sc] = len(questions[sc]) - len(records)
    summary.not_found = [n for n in order if n not in chosen]
    EvalRecord(model=model, name=slug, backend="imported", source=str(source.resolve()),
               files={sc: chosen[sc].name for sc in order if sc in parsed}).write(rd.eval_record_path(slug))
    return summary


def _choose_files(source: Path, manifest, model: str, summary: ImportSummary) -> tuple[dict, dict]:
    """Which `<scenario>_<model>.jsonl` answers which scenario (by name or alias; a
    language's file serves its easy/normal/hard sets when they have none of their own);
    what is left out goes to summary.ignored. -> (scenario -> file, the shared files)."""
    known = {s.name: s.name for s in manifest.scenarios}
    for s in manifest.scenarios:
        alias = (s.extra or {}).get("alias")
        if alias and alias not in known:
            known[alias] = s.name
    # `<domain>_<split>_<Language>` without its split: the authors' In-the-Wild answers come
    # one file per language and serve the easy, normal and hard sets.
    by_language: dict[str, list[str]] = {}
    for s in manifest.scenarios:
        stripped = SPLIT_RE.sub("", s.name)
        if stripped != s.name:
            by_language.setdefault(stripped, []).append(s.name)
    suffix = f"_{model}.jsonl"
    chosen: dict[str, Path] = {}  # scenario -> its file
    shared: dict[str, Path] = {}  # scenario -> a file that serves several (used when it has none of its own)
    for path in sorted(p for p in source.iterdir() if p.is_file() and p.name.endswith(suffix)):
        stem = path.name[: -len(suffix)]
        scenario = known.get(stem)
        if scenario is None and stem in by_language:
            for sc in by_language[stem]:
                shared[sc] = path
        elif scenario is None:
            summary.ignored.append(f"{path.name}: no scenario {stem!r} in this run")
        elif scenario in chosen:
            # the ID set under its own name and under its alias: the own name wins
            keep, drop = (chosen[scenario], path) if chosen[scenario].name == f"{scenario}{suffix}" else \
                (path, chosen[scenario])
            chosen[scenario] = keep
            summary.ignored.append(f"{drop.name}: same scenario as {keep.name}")
        else:
            chosen[scenario] = path
    for sc, path in shared.items():
        chosen.setdefault(sc, path)
    for path in sorted(set(shared.values()) - set(chosen.values())):
        summary.ignored.append(f"{path.name}: every scenario it would serve has its own file")
    if not chosen:
        example = f"{manifest.scenarios[0].name}{suffix}"
        raise UserError(f"{source}: no file named <scenario>_{model}.jsonl for a scenario of this run "
                        f"(e.g. {example}); found {len(summary.ignored)} files ending in {suffix}")
    return chosen, shared


def _read_all(chosen: dict, shared: dict, order: list, questions: dict, model: str,
              summary: ImportSummary) -> dict[str, list[dict]]:
    """Each chosen file read once for the scenarios it serves -> scenario -> answer records;
    answers whose prompt is not the run's question stop the import with one line."""
    serves: dict[Path, list[str]] = {}
    for sc in order:
        if sc in chosen:
            serves.setdefault(chosen[sc], []).append(sc)
    parsed: dict[str, list[dict]] = {}
    mismatches: list[tuple] = []
    for path, scenarios in serves.items():
        got, outside = _read_answers(path, {sc: questions[sc] for sc in scenarios}, model,
                                     shared=path in shared.values())
        if outside:
            summary.ignored.append(f"{path.name}: {outside} answers to questions of none of the scenarios it serves "
                                   "(not imported)")
        for sc in scenarios:
            parsed[sc] = got[sc][0]
            mismatches += got[sc][1]
    if mismatches:
        raise _mismatch_error(mismatches, sum(len(r) for r in parsed.values()))
    return parsed


def normalise(text: str) -> str:
    """Whitespace-normalised text: how a prompt is compared with the run's question."""
    return " ".join(str(text).split())


def same_question(prompt: str, question: str) -> bool:
    """The prompt is the question (LLaVA's answer files), or a chat-formatted prompt whose
    text holds it whole (emidbench eval's own records: `USER: <image>\\n... ASSISTANT:`)."""
    p, q = normalise(prompt), normalise(question)
    return p == q or (len(p) > len(q) and q in p)


def _short(text: str, n: int = 70) -> str:
    text = normalise(text)
    return text if len(text) <= n else text[: n - 3] + "..."


def _mismatch_error(mismatches: list[tuple], total: int) -> UserError:
    scenarios = list(dict.fromkeys(m[0] for m in mismatches))
    _, path, line, qid, prompt, question = mismatches[0]
    listed = ", ".join(scenarios[:4]) + (f", ... ({len(scenarios)} scenarios)" if len(scenarios) > 4 else "")
    return UserError(
        f"{len(mismatches)} of {total} answers were given to other questions than this run asks (in {listed}); "
        f"e.g. {path.name}:{line} question_id {qid!r}: answered {_short(prompt)!r}, the run asks {_short(question)!r}. "
        "Nothing imported: answers only line up with the questions they answered - build the run from the sets "
        "they were generated on (the paper's: `emidbench shift RUN --benchmark changdae/llavabench-shift-"
        "synthetic-v1 --suite released`), or generate answers for this run with `emidbench eval`")


def _check_previous(out_dir: Path) -> None:
    prev = EvalRecord.read(out_dir / EVAL_RECORD)
    if prev is not None and not prev.imported:
        raise UserError(f"{out_dir} holds answers `emidbench eval` generated ({prev.model!r}); import "
                        "under another --model name")


def _read_answers(path: Path, scenarios: dict[str, list[dict]], model: str,
                  shared: bool = False) -> tuple[dict[str, tuple[list[dict], list]], int]:
    """One answer file for the scenarios it serves -> ({scenario: (records in question
    order, prompt mismatches)}, answers to no question of them). A scenario's own file:
    each line must answer one of its questions. A file shared by several (a language's
    In-the-Wild answers) may answer more than the run has — a run with only the easy set
    — but not nothing at all."""
    ids = {}
    for questions in scenarios.values():
        for q in questions:
            ids.setdefault(q["question_id"], q)
    by_text = {str(k): k for k in ids}
    names = list(scenarios)
    seen: dict = {}
    outside: list[int] = []
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
        if qid is None and shared:
            outside.append(line)
            continue
        if qid is None:
            where = f"scenario {names[0]} ({len(scenarios[names[0]])} questions)" if len(names) == 1 else \
                f"any scenario it serves ({', '.join(names)})"
            raise UserError(f"{path}:{line}: question_id {rec['question_id']!r} is not a question of {where}")
        if qid in seen:
            raise UserError(f"{path}:{line}: question_id {qid!r} answered twice (first on line {seen[qid][0]})")
        seen[qid] = (line, rec)
    if shared and not seen:
        raise UserError(f"{path}: answers none of the questions of the scenarios it serves ({', '.join(names)}); "
                        f"{len(outside)} answers, question_ids such as "
                        f"{', '.join(repr(r.get('question_id')) for _, r in list(iter_jsonl(path))[:3])}")
    out = {}
    for scenario, questions in scenarios.items():
        records, mismatches = [], []
        for q in questions:
            qid = q["question_id"]
            if qid not in seen:
                continue
            line, rec = seen[qid]
            prompt = rec.get("prompt")
            if isinstance(prompt, str) and prompt.strip() and not same_question(prompt, q["text"]):
                mismatches.append((scenario, path, line, qid, prompt, q["text"]))
            meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
            aid = rec.get("answer_id") or answer_id(model, scenario, qid, rec["text"])
            records.append({"question_id": qid, "prompt": str(rec.get("prompt", "")), "text": rec["text"],
                            "answer_id": str(aid), "model_id": str(rec.get("model_id") or model),
                            "metadata": {**meta, "scenario": scenario, "imported_from": path.name}})
        out[scenario] = (records, mismatches)
    return out, len(outside)
