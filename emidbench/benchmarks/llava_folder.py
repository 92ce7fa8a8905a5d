"""A benchmark folder in LLaVA's eval layout.

    DIR/questions.jsonl     question_id, image, text, category   (or *questions*.jsonl)
    DIR/answers.jsonl       question_id, text: the reference     (or answers_gpt4.jsonl,
                                                                  qa90_gpt4_answer.jsonl)
    DIR/images/             the images named by `image`
    DIR/context.jsonl       optional: {"image", "caption"} (In-the-Wild) or COCO's
                            {"image", "captions", "instances"} (caps_boxes_*.jsonl)
"""

from __future__ import annotations

import re
from pathlib import Path

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.benchmarks.columns import ImageFolder
from emidbench.common.errors import UserError
from emidbench.common.io import iter_jsonl

QUESTION_FILES = ("questions.jsonl", "question.jsonl")
ANSWER_FILES = ("answers.jsonl", "answers_gpt4.jsonl", "answer.jsonl")
CONTEXT_FILES = ("context.jsonl",)


def looks_like_llava_folder(path: Path) -> bool:
    return path.is_dir() and _find(path, QUESTION_FILES, "*questions*.jsonl") is not None


def load_llava_folder(
    path: Path,
    name: str | None = None,
    questions: Path | None = None,
    answers: Path | None = None,
    images: Path | None = None,
    context: Path | None = None,
) -> Benchmark:
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    questions = Path(questions) if questions else _find(root, QUESTION_FILES, "*questions*.jsonl")
    answers = Path(answers) if answers else _find(root, ANSWER_FILES, "*answer*.jsonl")
    images = Path(images) if images else root / "images"
    context = Path(context) if context else _find(root, CONTEXT_FILES, "caps_boxes*.jsonl")
    if questions is None:
        raise UserError(f"{root}: no questions.jsonl (LLaVA layout: questions.jsonl, answers.jsonl, images/)")
    if answers is None:
        raise UserError(f"{root}: no reference answers (answers.jsonl, answers_gpt4.jsonl or *answer*.jsonl)")
    if not images.is_dir():
        raise UserError(f"{images}: image folder not found")

    refs: dict = {}
    for line, rec in iter_jsonl(answers):
        if "question_id" not in rec or "text" not in rec:
            raise UserError(f"{answers}:{line}: an answer needs question_id and text")
        if rec["question_id"] in refs:
            raise UserError(f"{answers}:{line}: duplicate question_id {rec['question_id']!r}")
        refs[rec["question_id"]] = str(rec["text"])
    contexts = _read_context(context) if context else {}

    samples: list[Sample] = []
    seen: set = set()
    folder = ImageFolder(images)
    for line, rec in iter_jsonl(questions):
        at = f"{questions}:{line}"
        for key in ("question_id", "image", "text"):
            if key not in rec:
                raise UserError(f"{at}: missing {key!r}")
        qid = rec["question_id"]
        if qid in seen:
            raise UserError(f"{at}: duplicate question_id {qid!r}")
        seen.add(qid)
        if qid not in refs:
            raise UserError(f"{at}: question_id {qid!r} has no reference answer in {answers}")
        data = folder.ref(str(rec["image"]), at)
        samples.append(
            Sample(
                question_id=qid,
                image=data,
                image_name=str(rec["image"]),
                text=str(rec["text"]),
                reference=refs[qid],
                category=rec.get("category"),
                context=contexts.get(str(rec["image"])),
                translations={k[len("text_"):]: v for k, v in rec.items() if k.startswith("text_")},
            )
        )
    bench = Benchmark(name=name or benchmark_name(root), samples=samples, source=str(root))
    return bench.validate()


def benchmark_name(path: Path) -> str:
    """`llava-bench-coco/` -> `llava_bench_coco` (scenario names are built on it)."""
    return re.sub(r"[^a-z0-9]+", "_", Path(path).resolve().name.lower()).strip("_") or "benchmark"


def _find(root: Path, names: tuple, pattern: str) -> Path | None:
    for n in names:
        if (root / n).is_file():
            return root / n
    hits = sorted(root.glob(pattern))
    return hits[0] if hits else None


def _read_context(path: Path) -> dict[str, str]:
    """image name -> the judge's view of it, as LLaVA's review scripts build it."""
    out = {}
    for line, rec in iter_jsonl(path):
        if "image" not in rec:
            raise UserError(f"{path}:{line}: a context line needs 'image'")
        if "captions" in rec:  # COCO caps_boxes: captions, then boxes
            caps = "\n".join(rec["captions"])
            boxes = "\n".join(f"{i['category']}: {i['bbox']}" for i in rec.get("instances", []))
            out[str(rec["image"])] = f"{caps}\n\n{boxes}" if boxes else caps
        elif "caption" in rec:
            out[str(rec["image"])] = str(rec["caption"])
        else:
            raise UserError(f"{path}:{line}: a context line needs 'caption' or 'captions'")
    return out
