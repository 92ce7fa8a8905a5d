"""`emidbench import-responses`: released answers -> RUN/responses/<model>/.

The paper's authors released answers as `<scenario>_<model>.jsonl` in LLaVA's answer
format; scenario names contain underscores, so a file is matched to the longest
scenario name of the run's manifest that it starts with, followed by `_<model>`.
"""

from __future__ import annotations

from pathlib import Path

from emidbench.errors import UserError
from emidbench.eval.stage import finalize
from emidbench.rundir import RunDir, atomic_write_jsonl, iter_jsonl, model_slug


def import_responses(source: Path, run: Path, model: str) -> int:
    rd = RunDir(run)
    manifest = rd.read_manifest()
    slug = model_slug(model, model)
    source = Path(source)
    if not source.is_dir():
        raise UserError(f"{source}: not a folder")
    names = sorted((s.name for s in manifest.scenarios), key=len, reverse=True)
    aliases = {s.extra.get("alias"): s.name for s in manifest.scenarios if s.extra.get("alias")}
    n = 0
    for path in sorted(source.glob(f"*_{model}.jsonl")):
        stem = path.name[: -len(f"_{model}.jsonl")]
        scenario = aliases.get(stem) or next((s for s in names if s == stem), None)
        if scenario is None:
            raise UserError(f"{path}: no scenario {stem!r} in this run's manifest")
        questions = rd.read_scenario(scenario)
        known = {q["question_id"] for q in questions}
        recs = []
        for line, r in iter_jsonl(path):
            if "question_id" not in r or "text" not in r:
                raise UserError(f"{path}:{line}: an answer needs question_id and text")
            if r["question_id"] not in known:
                raise UserError(f"{path}:{line}: question_id {r['question_id']!r} is not in scenario {scenario}")
            recs.append({"question_id": r["question_id"], "prompt": r.get("prompt", ""), "text": str(r["text"]),
                         "answer_id": r.get("answer_id", ""), "model_id": r.get("model_id", model),
                         "metadata": {**(r.get("metadata") or {}), "imported_from": path.name}})
        out = rd.responses_path(slug, scenario)
        atomic_write_jsonl(out, [])
        finalize(out, questions, recs)
        n += 1
    if n == 0:
        raise UserError(f"{source}: no files named <scenario>_{model}.jsonl")
    return n
