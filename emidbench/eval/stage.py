"""`emidbench eval`: one model's answer to every question of every scenario.

    RUN/responses/<model>/<scenario>.jsonl   LLaVA's answer format, question order:
        {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}
        metadata: scenario, backend, request_key, max_new_tokens, temperature,
        system_prompt (+ error for a failed item)
    RUN/responses/<model>/eval.json          the run record: model, backend, identity,
                                             generation settings, backend options (no key),
                                             every eval option, and last_run: how many items
                                             failed and how many a failed batch made the
                                             backend redo one at a time (with the reasons)
    RUN/cache/responses/                     the response cache (see cache.py)

Resume. Answers are appended and fsynced one batch at a time, so a process killed at any
moment (SIGKILL included) loses at most the batch in flight. A run starts by compacting
each answer file (atomic rewrite: one record per question, question order, torn tail
gone) and keeps only answers whose request key matches the current request — same
model, image, prompt, settings — so changed settings or regenerated shifts are
answered again, never mixed in. Every other question is pending; when the run ends the
files are compacted again, so each holds exactly one line per answered question.

Failed items. An item that fails (an image that does not decode, an API that rejects
it, an exception while generating it) is written with text "" and metadata.error; the
run goes on and the summary counts it (exit code 1 from the CLI). `emidbench score`
leaves failed items out (it counts them as n_failed); the next `emidbench eval` drops
them at its start and asks again. Failures are never cached.

Scale-out (torchrun / accelerate launch): see sharding.py.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from emidbench.common.errors import UserError
from emidbench.common.io import JsonlAppender
from emidbench.common.progress import StepTimes
from emidbench.eval.backends import BACKENDS, Example, Request, Result
from emidbench.eval.cache import ResponseCache, request_key
from emidbench.eval.options import EvalOptions
from emidbench.eval.sharding import Dist, shard_path, shard_paths, take_shard
from emidbench.rundir import EVAL_RECORD, RunDir, model_slug
from emidbench.rundir.answers import answer_id, answered, is_failed, merge_answers
from emidbench.rundir.records import EvalRecord

KINDS = ("done", "cached", "failed", "skipped")
# re-exported for callers that validate options (pipeline, cli)
__all__ = ["EvalOptions", "EvalSummary", "check_options", "run_eval"]
FLUSH_EVERY = 256  # cache hits are written in chunks of this many records


@dataclass
class EvalSummary:
    """What one `run_eval` did. Every selected question is counted once:
    done + cached + failed + skipped == questions in the selected scenarios."""

    model: str
    done: int = 0  # answered by the model in this run
    cached: int = 0  # answered from the response cache (incl. repeats of a request made in this run)
    failed: int = 0  # recorded with metadata.error; left out of scoring, retried next run
    skipped: int = 0  # already answered in RUN before this run
    generated: int = 0  # distinct requests the model was asked (model calls, summed over ranks)
    per_scenario: dict = field(default_factory=dict)  # scenario -> {done, cached, failed, skipped}
    world_size: int = 1
    seconds: float = 0.0  # wall time answering (weights loading included; the slowest rank)
    fallbacks: dict = field(default_factory=dict)  # reason -> items a batch failed on and that were redone alone

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def line(self) -> str:
        text = (f"eval {self.model}: {self.done + self.cached} answered ({self.done} by the model, "
                f"{self.cached} from the response cache), {self.skipped} already done, {self.failed} failed")
        if self.done + self.cached + self.failed:
            text += f", in {self.seconds:.1f} s"
        if self.fallbacks:
            n = sum(self.fallbacks.values())
            reason = max(self.fallbacks, key=self.fallbacks.get)
            text += (f"; {n} item{'s' if n != 1 else ''} redone one at a time after a batch failed "
                     f"({reason}{'; more reasons in eval.json' if len(self.fallbacks) > 1 else ''})")
        if self.failed:
            text += (" - failed items are recorded with metadata.error, left out of scoring and retried on "
                     "the next run (exit code 1)")
        return text

    def _count(self, scenario: str, kind: str, n: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + n)
        per = self.per_scenario.setdefault(scenario, dict.fromkeys(KINDS, 0))
        per[kind] += n


@dataclass
class _Item:
    scenario: str
    question_id: object
    request: Callable[[], Request]  # builds the request, reading its images then (never all held at once)
    prompt: str
    key: str
    error: str | None  # set when the image cannot be read: fails without asking the model


RECENT_IMAGES = 8  # images kept after a read: the questions of one image follow each other


def _image_reader(rd: RunDir):
    """name -> the stored image's bytes (b"" when unreadable: that item's error is recorded
    already). The last few reads are kept, so the questions that share an image read it
    once; memory stays a few images, whatever the run's size."""
    @functools.lru_cache(maxsize=RECENT_IMAGES)
    def read(name: str) -> bytes:
        try:
            return rd.image_path(name).read_bytes()
        except (OSError, UserError):
            return b""

    return read


def _request(read, line: dict, system_prompt: str | None) -> Request:
    """A scenario line's request, its image and in-context examples' images read now."""
    examples = tuple(Example(read(str(ex["image"])), str(ex["text"]), str(ex["answer"]))
                     for ex in line.get("examples") or ())
    return Request(read(str(line["image"])), str(line["text"]), system_prompt, examples)


def run_eval(run: Path, model: str, options: EvalOptions | None = None, console=None, **kwargs) -> EvalSummary:
    """Answer every question of the selected scenarios of RUN with one model.

    options: an EvalOptions, or its fields as keywords (batch_size=4, scenarios="*frost*",
    ...; see emidbench/eval/options.py). scenarios: a glob over scenario names (several
    separated by commas), default all. name: folder under RUN/responses/ (default: the
    last part of `model`). cache_dir: the response cache (default RUN/cache/responses;
    point several runs at one folder to share answers across runs). Returns an
    EvalSummary; failed items do not raise (summary.failed, summary.exit_code). Bad input
    raises UserError."""
    options = EvalOptions.of(options, kwargs, "run_eval")
    options.check()
    backend, name, scenarios = options.backend, options.name, options.scenarios
    rd = RunDir(run)
    manifest = rd.read_manifest()
    backend_cls = BACKENDS.get(backend)
    chosen = _select(manifest, scenarios, str(rd.manifest_path))
    slug = model_slug(model, name)
    out_dir = rd.responses_dir(slug)
    ref = _model_ref(model)
    _check_previous(out_dir, ref, backend)
    # normalised: temperature=0 and 0.0 (or system_prompt "" and None) are the same request
    settings = {"max_new_tokens": int(options.max_new_tokens), "temperature": float(options.temperature),
                "system_prompt": options.system_prompt or None}
    summary = EvalSummary(slug)
    cache_dir = options.cache_dir
    fresh = not out_dir.exists()  # refused before any answer: leave no folder that looks like a started eval

    dist = Dist.from_env()
    steps = StepTimes()
    prepare_start = time.perf_counter()  # the "prepare" step: up to the first answer
    try:
        if dist.world > 1 and not backend_cls.shardable:
            raise UserError(f"the {backend} backend parallelises itself; run it without torchrun/accelerate")
        engine = backend_cls(model, options)
        questions = {sc: rd.read_scenario(sc) for sc in chosen}
        if any(q.get("examples") for records in questions.values() for q in records):
            engine.check_examples()  # a backend or model that cannot show them: one line, before any answer
        items = _build_items(rd, engine, questions, settings)

        if dist.is_main:
            _compact(rd, slug, chosen, questions, items)
            record = EvalRecord(model=model, model_ref=ref, name=slug, backend=backend, identity=engine.identity,
                                generation=settings, options=_public(engine.record()),
                                eval_options=_public(options.public()))
            record.write(rd.eval_record_path(slug))
        dist.barrier()  # every rank reads the compacted files; nobody appends before that

        pending = _pending(rd, slug, chosen, items, summary if dist.is_main else None)
        mine = take_shard(list(pending), dist)
        writer = _Writers(rd, slug, dist)
        steps.add("prepare", time.perf_counter() - prepare_start)
        bar = _progress(console if dist.is_main else None, mine, pending, slug)
        start = time.perf_counter()
        try:
            _answer(engine, mine, pending, ResponseCache(cache_dir or rd.cache / "responses"), writer, summary,
                    slug, backend, settings, bar, options.group_by_length, steps)
        finally:
            writer.close()
            if bar:
                bar.stop()
        summary.seconds = time.perf_counter() - start

        with steps.step("merge"):
            dist.barrier()  # every shard is complete
            if dist.is_main:
                for sc in chosen:
                    merge_answers(rd.responses_path(slug, sc), questions[sc], shard_paths(out_dir, sc))
            summary = _combine(dist.all_gather(summary), slug, dist.world)  # also waits for the merge
        if dist.is_main:
            _record_run(record, engine, summary, steps, rd.eval_record_path(slug))
        dist.close()
    except UserError:
        if fresh and dist.is_main:
            _remove_if_unanswered(out_dir)
        raise
    finally:
        dist.close(sync=False)  # after an error (a no-op when closed above)
    if console is not None and dist.is_main:
        console.print(summary.line(), highlight=False, markup=False, soft_wrap=True)
    return summary


# --------------------------------------------------------------------------- steps

def _record_run(record: EvalRecord, engine, summary: "EvalSummary", steps, path: Path) -> None:
    """eval.json again, with what this run did: fallbacks, failures, the backend's final
    word, and the main process's step times."""
    record.options = _public(engine.record())
    record.last_run = {"fallbacks": {"items": sum(summary.fallbacks.values()),
                                     "reasons": dict(sorted(summary.fallbacks.items()))},
                       "failed": summary.failed}
    record.timings = steps.to_json()
    record.write(path)


def _compact(rd: RunDir, slug: str, chosen: list, questions: dict, items: dict) -> None:
    """Each answer file compacted before new answers are appended: failed answers and
    answers to another request (the question, image or settings changed) dropped, shards
    a killed run left folded in."""
    out_dir = rd.responses_dir(slug)
    for sc in chosen:
        keys = {it.question_id: it.key for it in items[sc]}
        merge_answers(rd.responses_path(slug, sc), questions[sc], shard_paths(out_dir, sc),
                      keep=lambda rec, q, k=keys: (not is_failed(rec) and (rec.get("metadata") or {})
                                                   .get("request_key") == k[q["question_id"]]))


def _pending(rd: RunDir, slug: str, chosen: list, items: dict, summary: "EvalSummary | None") -> dict:
    """{request key: the items asking it, in order} of the items without an answer; the
    answered ones are counted as skipped in `summary` (the main process's)."""
    pending: dict[str, list[_Item]] = {}
    for sc in chosen:
        done = answered(rd.responses_path(slug, sc))
        for it in items[sc]:
            if str(it.question_id) in done:
                if summary is not None:
                    summary._count(sc, "skipped")
            else:
                pending.setdefault(it.key, []).append(it)
    return pending


def _remove_if_unanswered(out_dir: Path) -> None:
    """The folder this eval created, when it holds no answer: its eval.json (and empty
    answer files) would say an eval of this model ran."""
    if not out_dir.is_dir() or any(p.stat().st_size for p in out_dir.rglob("*.jsonl")):
        return
    for p in sorted(out_dir.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    out_dir.rmdir()


def check_options(batch_size=8, max_new_tokens=128, temperature=0.0, concurrency=4) -> None:
    """The numeric options' ranges (EvalOptions.check does every option)."""
    EvalOptions(batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=temperature,
                concurrency=concurrency).check()


def _select(manifest, pattern: str | None, where: str = "RUN/shifts/manifest.json") -> list[str]:
    names = [s.name for s in manifest.scenarios]
    if pattern is None:
        return names
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    if not chosen and len(names) <= 8:
        raise UserError(f"no scenario matches {pattern!r} (have: {', '.join(names)})")
    if not chosen:  # a few names, not all 62: the likeliest ones, else the first
        near = list(dict.fromkeys(n for g in globs for n in difflib.get_close_matches(g, names, n=5, cutoff=0.5)))
        shown = near[:5] or names[:5]
        raise UserError(f"no scenario matches {pattern!r} ({'closest' if near else 'e.g.'}: {', '.join(shown)}; "
                        f"{len(names)} scenarios in all, listed in {where}; a glob such as '*frost*' picks several)")
    return chosen


def _model_ref(model: str) -> str:
    """What names the model across runs: the absolute folder for a local checkpoint (the
    bundled one included), else the id as given."""
    from emidbench.common.hf import resolve_model

    path = Path(resolve_model(model)).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def _check_previous(out_dir: Path, ref: str, backend: str) -> None:
    """Answers of another model (or imported ones) under the same name are not overwritten."""
    path = out_dir / EVAL_RECORD
    if not path.is_file() or not any(out_dir.glob("*.jsonl")):
        return
    prev = EvalRecord.read(path)
    if prev.imported:
        raise UserError(f"{out_dir} holds imported answers ({prev.source or '?'}); evaluate under another --name")
    if prev.backend != backend or (prev.model_ref or ref) != ref:
        raise UserError(f"{out_dir} holds answers of {prev.model!r} ({prev.backend} backend); pass "
                        "another --name, or delete that folder")


def _public(record: dict) -> dict:
    """A backend's record for eval.json, with credentials stripped from URLs."""
    out = dict(record)
    url = out.get("base_url")
    if url:
        parts = urlsplit(url)
        if parts.username or parts.password:
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            out["base_url"] = urlunsplit(parts._replace(netloc=netloc))
    return out


def _build_items(rd: RunDir, engine, questions: dict, settings: dict) -> dict[str, list[_Item]]:
    """Every selected question as an item: its prompt, cache key and (for an image that
    does not decode) its error. Each image is read here to be checked and hashed, then let
    go: an item's request reads its images again when its batch runs."""
    from emidbench.benchmarks.base import decode_image

    images: dict[str, tuple[str, str | None]] = {}  # name -> (sha256, error)

    def image(name: str) -> tuple[str, str | None]:
        if name not in images:
            data, error = b"", None
            try:
                data = rd.image_path(name).read_bytes()
                decode_image(data, f"image {name}")
            except UserError as e:
                error = str(e)
            except OSError as e:
                error = f"image {name}: cannot read ({type(e).__name__})"
            images[name] = (hashlib.sha256(data).hexdigest(), error)
        return images[name]

    read = _image_reader(rd)
    items = {}
    for sc, records in questions.items():
        out = []
        for q in records:
            sha, error = image(q["image"])
            example_shas = []
            for ex in q.get("examples") or ():  # an ICL scenario's examples (shift/domains.py)
                ex_sha, ex_error = image(str(ex["image"]))
                error = error or (ex_error and f"in-context example: {ex_error}")
                example_shas.append(ex_sha)
            request = functools.partial(_request, read, q, settings["system_prompt"])
            try:
                prompt = engine.prompt(request())
            except Exception as e:  # a template that refuses this item: its recorded failure
                prompt, error = "", error or f"prompt: {type(e).__name__}: {_first_line(e)}"
            out.append(_Item(sc, q["question_id"], request, prompt,
                             request_key(engine.identity, sha, prompt, settings, example_shas), error))
        items[sc] = out
    return items


def answer_record(item: _Item, result: Result, model: str, backend: str, settings: dict) -> dict:
    meta = {"scenario": item.scenario, "backend": backend, "request_key": item.key, **settings}
    if result.error:
        meta["error"] = result.error
    aid = answer_id(model, item.scenario, item.question_id, result.text)
    return {"question_id": item.question_id, "prompt": item.prompt, "text": result.text if not result.error else "",
            "answer_id": aid, "model_id": model, "metadata": meta}


class _Writers:
    """Appenders per scenario: the answer file itself, or this rank's shard under torchrun."""

    def __init__(self, rd: RunDir, slug: str, dist: Dist):
        self.rd, self.slug, self.dist = rd, slug, dist
        self.open: dict[str, JsonlAppender] = {}
        self.buffer: dict[str, list[dict]] = {}

    def add(self, scenario: str, record: dict) -> None:
        self.buffer.setdefault(scenario, []).append(record)

    def pending(self) -> int:
        return sum(len(v) for v in self.buffer.values())

    def flush(self) -> None:
        for sc, records in self.buffer.items():
            if sc not in self.open:
                path = (shard_path(self.rd.responses_dir(self.slug), sc, self.dist.rank) if self.dist.world > 1
                        else self.rd.responses_path(self.slug, sc))
                self.open[sc] = JsonlAppender(path)
            self.open[sc].write(records)
        self.buffer = {}

    def close(self) -> None:
        for w in self.open.values():
            w.close()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


# run_eval's timed steps, as named in eval.json's timings.
STEPS = ("prepare", "cached answers", "load model", "generate", "merge")


def _answer(engine, mine: list[str], pending: dict, cache: ResponseCache, writer: _Writers, summary: EvalSummary,
            slug: str, backend: str, settings: dict, bar, group_by_length: bool = True, steps=None) -> None:
    """Answer the pending requests of this process: from the response cache, then by the
    model (loaded only if something is left), each answer written as it comes. Timed as
    the steps "cached answers", "load model" and "generate" (STEPS)."""
    steps = steps or StepTimes()
    with steps.step("cached answers"):
        to_generate = _answer_from_cache(mine, pending, cache, writer, summary, slug, backend, settings, bar)
    if to_generate:  # weights load only when something is left to generate
        with steps.step("load model"):
            if bar:
                bar.describe(f"eval {slug} (loading the model)")
            engine.load()
            if bar:
                bar.describe(f"eval {slug}")
    with steps.step("generate"):
        _generate(engine, to_generate, pending, cache, writer, summary, slug, backend, settings, bar, group_by_length)


def _emit(key: str, result: Result, first_kind: str, pending, writer, summary, slug, backend, settings, bar) -> None:
    for i, it in enumerate(pending[key]):
        writer.add(it.scenario, answer_record(it, result, slug, backend, settings))
        kind = "failed" if result.error else (first_kind if i == 0 else "cached")
        summary._count(it.scenario, kind)
    if bar:
        bar.advance(len(pending[key]))


def _answer_from_cache(mine, pending, cache, writer, summary, slug, backend, settings, bar) -> list[str]:
    """Write the answers the cache has (and the items that fail before any model call);
    returns the request keys left to generate."""
    def emit(key: str, result: Result, first_kind: str) -> None:
        _emit(key, result, first_kind, pending, writer, summary, slug, backend, settings, bar)

    to_generate = []
    for key in mine:
        first = pending[key][0]
        hit = None if first.error else cache.get(key)
        if first.error:
            emit(key, Result("", first.prompt, first.error), "failed")
        elif hit is not None:
            emit(key, Result(hit["text"], first.prompt), "cached")
        else:
            to_generate.append(key)
        if writer.pending() >= FLUSH_EVERY:
            writer.flush()
    writer.flush()
    return to_generate


def _generate(engine, to_generate, pending, cache, writer, summary, slug, backend, settings, bar,
              group_by_length) -> None:
    def emit(key: str, result: Result, first_kind: str) -> None:
        _emit(key, result, first_kind, pending, writer, summary, slug, backend, settings, bar)

    if group_by_length:
        # within a scenario, requests of similar image size / prompt length batch together
        # (less padding); answers are the same in any order (batch invariance) and each
        # file is compacted to question order at the end
        scenario_rank = {}
        for k in to_generate:
            scenario_rank.setdefault(pending[k][0].scenario, len(scenario_rank))
        shape = {k: engine.order_key(pending[k][0].request(), pending[k][0].prompt) for k in to_generate}
        to_generate = sorted(to_generate, key=lambda k: (scenario_rank[pending[k][0].scenario], shape[k]))
    size = max(1, int(engine.batch_size))
    fallbacks_before = dict(engine.fallbacks)
    for start in range(0, len(to_generate), size):
        batch = to_generate[start:start + size]
        requests = [pending[k][0].request() for k in batch]
        results = engine.answer(requests, [pending[k][0].prompt for k in batch])  # the stage's renderings
        if len(results) != len(batch):
            raise RuntimeError(f"backend returned {len(results)} results for {len(batch)} requests")
        for key, res in zip(batch, results):
            summary.generated += 1
            if res.error is None:
                cache.put(key, res.text, pending[key][0].prompt)  # before the answer: a kill here costs nothing
            emit(key, res, "done")
        writer.flush()
    for reason, n in engine.fallbacks.items():
        n -= fallbacks_before.get(reason, 0)
        if n:
            summary.fallbacks[reason] = summary.fallbacks.get(reason, 0) + n


def _combine(summaries: list[EvalSummary], slug: str, world: int) -> EvalSummary:
    total = EvalSummary(slug, world_size=world, seconds=max(s.seconds for s in summaries))
    for s in summaries:
        total.generated += s.generated
        for reason, n in s.fallbacks.items():
            total.fallbacks[reason] = total.fallbacks.get(reason, 0) + n
        for sc, counts in s.per_scenario.items():
            for kind, n in counts.items():
                total._count(sc, kind, n)
    return total


class _Bar:
    """The eval's bar (common.progress's columns: rate and ETA), started and stopped by
    run_eval around the generation."""

    def __init__(self, console, total: int, label: str):
        from emidbench.common.progress import make_progress

        self.progress = make_progress(console, "items")
        self.task = self.progress.add_task(label, total=total)
        self.progress.start()

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def stop(self) -> None:
        self.progress.stop()


def _progress(console, mine: list[str], pending: dict, slug: str):
    total = sum(len(pending[k]) for k in mine)
    if console is None or total == 0:
        return None
    return _Bar(console, total, f"eval {slug}")
