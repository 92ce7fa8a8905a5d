"""`emidbench eval`: every question of every scenario -> one model's answers.

    RUN/responses/<model>/<scenario>.jsonl   LLaVA's answer format, question order
    RUN/responses/<model>/eval.json          model, backend, generation settings
    RUN/cache/responses/                     content-addressed answers

Resume: answers are appended (and fsynced) batch by batch, so a killed run loses at most
the batch in flight; a rerun skips answered questions and retries failed ones. At the
end each touched file is rewritten in question order with one line per question.

Cache: an answer is keyed by (model identity, image bytes, question, system prompt,
generation settings); the same request in another scenario or suite is not generated
again.

Scale-out: under torchrun / accelerate (RANK and WORLD_SIZE set), rank r takes the
pending requests i with i % WORLD_SIZE == r, writes its own shard, and rank 0 merges the
shards into the scenario files after a barrier. Greedy answers are identical to a
single-process run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from emidbench.errors import UserError
from emidbench.eval.backends import BACKENDS, Request, Result
from emidbench.rundir import (JsonlAppender, RunDir, atomic_write_json, atomic_write_jsonl, iter_jsonl, model_slug,
                              read_json)


@dataclass
class EvalSummary:
    model: str
    done: int = 0  # generated in this run
    cached: int = 0  # answered from the response cache
    skipped: int = 0  # already answered in RUN
    failed: int = 0
    per_scenario: dict = field(default_factory=dict)

    def line(self) -> str:
        return (f"eval {self.model}: {self.done} generated, {self.cached} from cache, {self.skipped} already done, "
                f"{self.failed} failed" + (" (failed items are retried on the next run)" if self.failed else ""))


@dataclass
class _Item:
    scenario: str
    question_id: object
    request: Request
    key: str


def run_eval(run: Path, model: str, backend: str = "hf", name: str | None = None, batch_size: int = 8,
             max_new_tokens: int = 128, temperature: float = 0.0, system_prompt: str | None = None,
             scenarios: str | None = None, dtype: str = "auto", device: str = "auto",
             trust_remote_code: bool = False, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
             concurrency: int = 4, console=None) -> EvalSummary:
    rd = RunDir(run)
    manifest = rd.read_manifest()
    slug = model_slug(model, name)
    backend_cls = BACKENDS.get(backend)
    chosen = [s.name for s in manifest.scenarios if scenarios is None or fnmatch.fnmatch(s.name, scenarios)]
    if not chosen:
        raise UserError(f"no scenario matches {scenarios!r} (have: {', '.join(s.name for s in manifest.scenarios)})")
    settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "system_prompt": system_prompt}
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    summary = EvalSummary(slug)
    out_dir = rd.responses_dir(slug)

    records = {sc: rd.read_scenario(sc) for sc in chosen}
    answered = {sc: _answered(rd.responses_path(slug, sc)) for sc in chosen}
    pending_raw = [(sc, r) for sc in chosen for r in records[sc] if r["question_id"] not in answered[sc]]
    summary.skipped = sum(len(records[sc]) for sc in chosen) - len(pending_raw)
    if not pending_raw:
        if rank == 0 and console:
            console.print(summary.line(), highlight=False)
        return summary

    engine = backend_cls(model=model, batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=temperature,
                         dtype=dtype, device=device, trust_remote_code=trust_remote_code, base_url=base_url,
                         api_key_env=api_key_env, concurrency=concurrency)
    cache = ResponseCache(rd.cache / "responses")
    items = []
    image_bytes: dict[str, bytes] = {}
    for sc, r in pending_raw:
        if r["image"] not in image_bytes:
            path = rd.image_path(r["image"])
            image_bytes[r["image"]] = path.read_bytes() if path.is_file() else b""
        req = Request(image_bytes[r["image"]], r["text"], system_prompt)
        key = _request_key(engine.identity, req, settings)
        items.append(_Item(sc, r["question_id"], req, key))

    if rank == 0:
        atomic_write_json(out_dir / "eval.json", {"model": model, "name": slug, "backend": backend,
                                                  "generation": settings, "batch_size": batch_size,
                                                  "dtype": dtype, "world_size": world})
    mine = items[rank::world]
    shard_dir = out_dir / ".shards" if world > 1 else None
    writers: dict[str, JsonlAppender] = {}

    def writer(sc: str) -> JsonlAppender:
        if sc not in writers:
            path = (shard_dir / f"{sc}.rank{rank}.jsonl") if shard_dir else rd.responses_path(slug, sc)
            writers[sc] = JsonlAppender(path)
        return writers[sc]

    def emit(item: _Item, res: Result) -> None:
        rec = answer_record(item.question_id, res, slug, settings, item.scenario)
        writer(item.scenario).write([rec])
        summary.per_scenario.setdefault(item.scenario, 0)
        summary.per_scenario[item.scenario] += 1
        if res.error:
            summary.failed += 1

    # Answers already in the cache, and duplicates within this run, are not generated.
    to_generate: dict[str, _Item] = {}
    waiting: dict[str, list[_Item]] = {}
    for it in mine:
        hit = cache.get(it.key)
        if hit is not None:
            emit(it, Result(hit["text"], hit["prompt"]))
            summary.cached += 1
        elif it.key in to_generate:
            waiting[it.key].append(it)
        else:
            to_generate[it.key] = it
            waiting[it.key] = []

    bar = _progress(console, len(to_generate), f"eval {slug}") if rank == 0 else None
    try:
        batch_n = max(1, getattr(engine, "batch_size", batch_size))
        queue = list(to_generate.values())
        for i in range(0, len(queue), batch_n):
            batch = queue[i:i + batch_n]
            results = engine.answer([it.request for it in batch])
            for it, res in zip(batch, results):
                if res.error is None:
                    cache.put(it.key, {"text": res.text, "prompt": res.prompt})
                for target in [it, *waiting[it.key]]:
                    emit(target, res)
                summary.done += 1
                summary.cached += len(waiting[it.key])
            if bar:
                bar[0].advance(bar[1], len(batch))
    finally:
        if bar:
            bar[0].stop()
        for w in writers.values():
            w.close()

    if world > 1:
        summary = _merge_ranks(rd, slug, chosen, records, shard_dir, summary, rank, world)
    else:
        for sc in chosen:
            if sc in summary.per_scenario:
                finalize(rd.responses_path(slug, sc), records[sc])
    if rank == 0 and console:
        console.print(summary.line(), highlight=False)
    return summary


def answer_record(qid, res: Result, model: str, settings: dict, scenario: str) -> dict:
    meta = {"scenario": scenario, **settings}
    if res.error:
        meta["error"] = res.error
    # Deterministic answer ids (LLaVA uses random shortuuids): same answer, same bytes.
    aid = hashlib.sha256(json.dumps([model, scenario, qid, res.text]).encode()).hexdigest()[:22]
    return {"question_id": qid, "prompt": res.prompt, "text": res.text, "answer_id": aid, "model_id": model,
            "metadata": meta}


def _answered(path: Path) -> set:
    """question ids with a successful answer (failed ones are retried)."""
    if not path.is_file():
        return set()
    return {r["question_id"] for _, r in iter_jsonl(path, allow_torn_tail=True)
            if not (r.get("metadata") or {}).get("error")}


def finalize(path: Path, questions: list[dict], extra: list[dict] = ()) -> None:
    """One line per question, in question order; a later record for the same question (a
    successful retry) replaces an earlier one."""
    latest: dict = {}
    if path.is_file():
        for _, r in iter_jsonl(path, allow_torn_tail=True):
            latest[r["question_id"]] = r
    for r in extra:
        latest[r["question_id"]] = r
    ordered = [latest[q["question_id"]] for q in questions if q["question_id"] in latest]
    atomic_write_jsonl(path, ordered)


def _merge_ranks(rd: RunDir, slug: str, chosen: list, records: dict, shard_dir: Path, summary: EvalSummary,
                 rank: int, world: int) -> EvalSummary:
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if _cuda() else "gloo")
    counts = [None] * world
    dist.all_gather_object(counts, [summary.done, summary.cached, summary.failed])
    if rank == 0:
        for sc in chosen:
            shards = sorted(shard_dir.glob(f"{sc}.rank*.jsonl"))
            extra = [r for p in shards for _, r in iter_jsonl(p, allow_torn_tail=True)]
            if extra:
                finalize(rd.responses_path(slug, sc), records[sc], extra)
            for p in shards:
                p.unlink()
        summary.done, summary.cached, summary.failed = (sum(c[i] for c in counts) for i in range(3))
    dist.barrier()
    return summary


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _request_key(identity: str, req: Request, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([identity, req.question, req.system_prompt, settings], sort_keys=True).encode())
    h.update(hashlib.sha256(req.image).digest())
    return h.hexdigest()


class ResponseCache:
    """One small JSON file per answer, under its request key (written atomically)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self._path(key)
        try:
            return read_json(p) if p.is_file() else None
        except UserError:  # a damaged entry is a miss, not a failure
            return None

    def put(self, key: str, value: dict) -> None:
        atomic_write_json(self._path(key), value)


def _progress(console, total: int, label: str):
    if console is None or total == 0:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed or 0:.1f} items/s")

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                   TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task(label, total=total)
    bar.start()
    return bar, task
