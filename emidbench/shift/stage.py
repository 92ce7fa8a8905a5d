"""`emidbench shift`: a benchmark and a suite -> RUN/shifts/.

Nothing is done twice. Every distinct (image, corruption, severity) is corrupted once and
shared by every scenario that uses it (the joint synthetic scenarios reuse the
visual-only ones' images; text-only scenarios reuse the ID images), and every image is
stored once under its content hash (RunDir.put_image). Randomness comes from what
identifies a piece of work — (seed, image hash, corruption, severity) for an image,
(seed, scenario, question_id) for a question — so results do not depend on order,
process or --workers: the same benchmark, suite and seed give byte-identical files.

Workers: with --workers 1 everything runs in this process: the corruptions on the main
thread, PNG encoding on a helper thread, and the text perturbations' preparation (library
imports, WordNet lookups: most of their cost) on another. With N > 1, N-1 spawned
processes also corrupt, encode and store images (grouped by source image, decoded once)
and this process joins in; only image names travel back.

Images are stored as PNG (lossless) with visual.fast_png, ~3x faster than Pillow's
fastest setting at the same size: encoding was most of this stage's cost.

Resume. Three hidden bookkeeping files in RUN/shifts/ (not deterministic in their line
order, and not part of the results):
  .images.jsonl        one line per stored corrupted image: (source hash, corruption,
                       severity, seed) -> image name, appended as each job finishes;
  .progress.json       scenario -> fingerprint of its inputs and sha256 of its file;
  .translations.json   machine translations already made, per translator and language.
A scenario file is written atomically once its images exist. A rerun with the same
arguments skips scenarios whose file, fingerprint and hash match, and image jobs whose
stored image is intact; it redoes only what is missing. The manifest is written last and
removed when a run starts: its presence means the stage finished.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.common.images import decode_image, image_format
from emidbench.common.errors import UserError
from emidbench.common.hashing import content_hash, derive_seed
from emidbench.common.io import JsonlAppender, atomic_write_json, iter_jsonl, jsonl_line, read_json, write_if_changed
from emidbench.rundir import RunDir
from emidbench.rundir.manifest import Manifest, ScenarioEntry
from emidbench.shift.suites import ENGLISH, ScenarioPlan, Suite, load_suite, plan_scenarios
from emidbench.shift.translate import SUFFIX, Translator, parse_translator
from emidbench.shift.visual import MIN_SIDE, PNG_ENCODER, corrupt_image, fast_png

IMAGE_INDEX = ".images.jsonl"
PROGRESS = ".progress.json"
TRANSLATIONS = ".translations.json"
SIMILARITY_FILTERED = ("sr", "synonym")  # MM_Robustness filtered its EDA perturbations
JOBS_PER_TASK = 8  # corruptions of one source image sent to a worker together (decoded once)


# --------------------------------------------------------------------------- image jobs

@dataclass(frozen=True)
class ImageJob:
    source: str  # content hash of the source image
    corruption: str
    severity: int
    seed: int

    @property
    def key(self) -> tuple:
        return (self.source, self.corruption, self.severity, self.seed)


def corrupt_and_store(images_root: str, data: bytes, jobs: list[tuple[str, int, int]]) -> list[str]:
    """Decode one source image, apply each (corruption, severity, seed), store each result
    as PNG in the content-hash store; the stored names. Module-level: worker processes run it.

    Encoding and writing run on a helper thread, overlapped with the next corruption
    (zlib, hashing and fsync release the GIL). The thread touches no random state, so
    the global-RNG seeding of the corruptions on this thread stays exact."""
    import numpy as np

    run = RunDir(images_root)
    arr = np.asarray(decode_image(data, "image"))
    with ThreadPoolExecutor(max_workers=1) as writer:
        stored = [writer.submit(_store_png, run, corrupt_image(arr, name, severity, seed))
                  for name, severity, seed in jobs]
    return [f.result() for f in stored]


def _store_png(run: RunDir, arr) -> str:
    return run.put_image(fast_png(arr), "png")


class _ImageIndex:
    """RUN/shifts/.images.jsonl: finished image jobs, appended as they finish."""

    def __init__(self, run: RunDir, intact=None):
        self.run = run
        self.intact = intact or run.image_intact  # name -> bool (shared with _Progress: hashed once)
        self.path = run.shifts / IMAGE_INDEX
        self.done: dict[tuple, str] = {}
        if self.path.exists():
            for _, rec in iter_jsonl(self.path, allow_torn_tail=True):
                key = (rec.get("source"), rec.get("corruption"), rec.get("severity"), rec.get("seed"))
                self.done[key] = str(rec.get("image"))
        self._out: JsonlAppender | None = None

    def stored(self, job: ImageJob) -> str | None:
        """The job's image, if it was made before and the file is intact (its name is its hash)."""
        name = self.done.get(job.key)
        return name if name is not None and self.intact(name) else None

    def add(self, jobs: list[ImageJob], names: list[str]) -> None:
        if self._out is None:
            self._out = JsonlAppender(self.path)
        self._out.write({"source": j.source, "corruption": j.corruption, "severity": j.severity, "seed": j.seed,
                         "image": n} for j, n in zip(jobs, names))
        for j, n in zip(jobs, names):
            self.done[j.key] = n

    def close(self) -> None:
        """Rewrite the index in a fixed order, so a finished run's files do not depend on
        the order in which workers finished."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if not self.done:
            return
        text = "".join(jsonl_line({"source": k[0], "corruption": k[1], "severity": k[2], "seed": k[3], "image": v})
                       for k, v in sorted(self.done.items(), key=lambda kv: str(kv[0])))
        write_if_changed(self.path, text.encode("utf-8"))


class _ImageWork:
    """Compute the missing image jobs. workers=1: here, in order. workers=N>1: N-1 spawned
    processes start on them at once (`start`) while this process makes the questions; then
    this process joins in (`finish`), taking not-yet-started tasks from the end of the
    queue, so N processes share the image work."""

    def __init__(self, run: RunDir, index: _ImageIndex, todo: dict[str, list[ImageJob]], sources: dict[str, bytes],
                 workers: int, console):
        self.run, self.index, self.workers, self.console = run, index, workers, console
        # tasks: up to JOBS_PER_TASK jobs of one source image, in a fixed order
        self.tasks = [(src, jobs[i:i + JOBS_PER_TASK]) for src, jobs in sorted(todo.items())
                      for i in range(0, len(jobs), JOBS_PER_TASK)]
        self.sources = sources
        self.total = sum(len(j) for _, j in self.tasks)
        self.pool = None
        self.futures: list = []
        self.progress = None
        self.bar = None

    def _run_here(self, src: str, jobs: list[ImageJob]) -> None:
        names = corrupt_and_store(str(self.run.root), self.sources[src], [(j.corruption, j.severity, j.seed) for j in jobs])
        self.index.add(jobs, names)
        self._advance(len(jobs))

    def _advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.bar, n)

    def start(self) -> None:
        if not self.tasks:
            return
        if self.console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True)
            self.bar = self.progress.add_task("corrupting images", total=self.total)
            self.progress.start()
        if self.workers > 1 and len(self.tasks) > 1:
            import multiprocessing as mp

            # spawn: safe on every platform and with threads (torch, rich) in this process
            self.pool = ProcessPoolExecutor(max_workers=min(self.workers - 1, len(self.tasks) - 1),
                                            mp_context=mp.get_context("spawn"))
            root = str(self.run.root)
            for src, jobs in self.tasks:
                fut = self.pool.submit(corrupt_and_store, root, self.sources[src],
                                       [(j.corruption, j.severity, j.seed) for j in jobs])
                fut.add_done_callback(lambda f, n=len(jobs): f.cancelled() or self._advance(n))
                self.futures.append((fut, src, jobs))

    def finish(self, between=lambda: None) -> None:
        """Run or wait for the image tasks; call `between()` after each one run here."""
        if not self.tasks:
            return
        try:
            if self.pool is None:
                for src, jobs in self.tasks:
                    self._run_here(src, jobs)
                    between()
                return
            for fut, src, jobs in reversed(self.futures):  # help from the back of the queue
                if fut.cancel():
                    self._run_here(src, jobs)
                    between()
            for fut, src, jobs in self.futures:
                if not fut.cancelled():
                    self.index.add(jobs, fut.result())
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            if self.progress is not None:
                self.progress.stop()


# --------------------------------------------------------------------------- the stage

def run_shift(
    benchmark: Benchmark,
    suite: str | Path | Suite,
    out: Path,
    seed: int = 0,
    workers: int = 1,
    limit: int | None = None,
    dry_run: bool = False,
    translator: str | None = None,
    split_embedder=None,
    split_options: dict | None = None,
    split_index: str | Path | None = None,
    similarity_filter=None,
    console=None,
) -> Manifest:
    """Write RUN/shifts/ for `benchmark` under `suite` (a built-in name, a YAML path or a
    Suite); returns the manifest. `split_embedder` ranks a second domain's images for its
    easy/hard split: an embedder object, or a name (`pixel`, the default; `paper`;
    `offline`) built with `split_options`. Everything that can be wrong with the inputs is
    checked before anything is written. `split_index`: the paper's released easy/hard split
    (split.read_split_index) instead of computing one. `similarity_filter`: a sentence
    encoder (hub id or folder, or a text.similarity.SimilarityFilter) for MM_Robustness's
    filter on synonym replacement (text/similarity.py)."""
    if not isinstance(workers, int) or workers < 1:
        raise UserError(f"--workers must be a positive integer, not {workers!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UserError(f"--limit must be a positive integer, not {limit!r}")
    bench = benchmark.limit(limit)
    suite_obj = suite if isinstance(suite, Suite) else load_suite(suite)
    plans = plan_scenarios(bench, suite_obj)
    samples_of: dict = {None: bench.samples, **bench.domains}
    notes: list[str] = []

    def say(msg: str) -> None:
        if console is not None:
            console.print(msg, highlight=False, soft_wrap=True)
        else:
            print(msg, file=sys.stderr)

    if any(s.splits for s in suite_obj.flatten()) and not bench.domains:
        notes.append(f"natural domain splits skipped: benchmark {bench.name} has no second visual domain "
                     "(attach one with --domain NAME=SPEC)")
    if isinstance(split_embedder, str):
        from emidbench.shift.split import check_split_embedder

        check_split_embedder(split_embedder)
    if dry_run:  # the plan as a run would make it: languages nothing can provide are left out (noted)
        plans = _translatable(plans, samples_of, parse_translator(translator), notes)[0]
        for n in notes:
            say(f"note: {n}")
        print_plan(plans, bench, suite_obj, console)
        return Manifest(suite_obj.name, bench.name, seed, bench.name, [])

    paper_split = None
    if split_index is not None:
        from emidbench.shift.split import read_split_index

        paper_split = read_split_index(split_index)
        if not any(p.split for p in plans):
            notes.append(f"--split-index {Path(split_index).name} unused: no scenario of the suite splits a domain")
        elif len(bench.domains) != 1:
            raise UserError(f"--split-index gives one domain's split; benchmark {bench.name} has "
                            f"{len(bench.domains)} second domains ({', '.join(sorted(bench.domains)) or 'none'})")
    sim = None
    if similarity_filter is not None and any(p.text is not None and p.text.name in SIMILARITY_FILTERED
                                             for p in plans):
        from emidbench.shift.text.similarity import SimilarityFilter

        # a name is loaded; a SimilarityFilter object is used as it is (its counts start anew)
        sim = SimilarityFilter(similarity_filter) if isinstance(similarity_filter, str) else similarity_filter
        sim.stats = {}
    _check_image_sizes(plans, samples_of)
    if split_embedder is None or isinstance(split_embedder, str):
        from emidbench.shift.split import split_embedder as named_embedder

        if not isinstance(split_options or {}, dict):
            raise UserError(f"split_options must be a mapping (vision_encoder, text_encoder), not {split_options!r}")
        split_embedder = named_embedder(split_embedder, **(split_options or {}))

    run = RunDir(out)
    # Languages: the benchmark's translations, else the translator, else skipped (with a note).
    plans, machine, provenance, cache = _languages(plans, samples_of, translator, run, notes)
    for n in notes:
        say(f"note: {n}")
    splits = {d: _split(bench, d, split_embedder, paper_split) for d in sorted({p.domain for p in plans if p.domain})}

    # From here on, files change: the manifest goes first (its presence means "finished").
    run.shifts.mkdir(parents=True, exist_ok=True)
    run.manifest_path.unlink(missing_ok=True)
    if cache is not None:
        atomic_write_json(run.shifts / TRANSLATIONS, cache)

    progress = _Progress(run)
    selected = {p.name: _select(samples_of[p.domain], splits.get(p.domain), p.split) for p in plans}
    fingerprints = {p.name: _fingerprint(p, selected[p.name], machine, seed, _filter_of(p, sim)) for p in plans}
    todo = [p for p in plans if not progress.is_done(p.name, fingerprints[p.name], run)]

    # Distinct image jobs of the scenarios still to write, minus those stored by an earlier run.
    index = _ImageIndex(run, intact=progress.image_intact)
    sources: dict[str, bytes] = {}
    job_of: dict[tuple, ImageJob] = {}
    missing: dict[str, list[ImageJob]] = {}
    for p in todo:
        if p.visual is None:
            continue
        for s in selected[p.name]:
            h = s.image_hash
            job = ImageJob(h, p.visual.name, p.visual.severity, derive_seed(seed, h, p.visual.name, p.visual.severity))
            if (h, p.visual.name, p.visual.severity) in job_of:
                continue
            job_of[(h, p.visual.name, p.visual.severity)] = job
            if index.stored(job) is None:
                sources[h] = s.image
                missing.setdefault(h, []).append(job)

    work = _ImageWork(run, index, missing, sources, workers, console)
    texts = _Questions(todo, selected, seed, machine, sim)
    if missing:
        # imported here first, so that two threads are never inside the same packages'
        # imports at once (an import cycle across threads is a deadlock error)
        import imagecorruptions  # noqa: F401
    try:
        texts.start()  # the helper thread's imports and lookups overlap the image work
        work.start()
        work.finish(between=texts.make_if_ready)  # a failed helper (no WordNet) stops the work early
        questions = texts.result()
    finally:
        index.close()

    originals: dict[str, str] = {}
    for p in todo:
        records = []
        for s, text in zip(selected[p.name], questions[p.name][0]):
            h = s.image_hash
            if p.visual is not None:
                image = index.done[job_of[(h, p.visual.name, p.visual.severity)].key]
            else:
                if h not in originals:
                    originals[h] = run.put_image(s.image, image_format(s.image))
                image = originals[h]
            rec = {"question_id": s.question_id, "image": image, "text": text, "category": s.category,
                   "reference": s.reference}
            if s.context is not None:
                rec["context"] = s.context
            records.append(rec)
        run.write_scenario(p.name, records)
        progress.mark(p.name, fingerprints[p.name], run, questions[p.name][1],
                      similarity=sim.stats.get(p.name) if _filter_of(p, sim) else None)

    entries = []
    has_natural = any(p.family == "natural" for p in plans)
    for p in plans:
        extra = {**p.extra(), "fingerprint": fingerprints[p.name]}
        passed = progress.passed(p.name)
        if passed:
            extra["passed_through"] = passed
        if p.language != ENGLISH:
            extra["translation"] = provenance[p.language]
        if _filter_of(p, sim):
            extra["similarity_filter"] = progress.similarity(p.name)
        if p.family == "id" and has_natural:
            extra["alias"] = f"{bench.name}_{ENGLISH}"
        entries.append(ScenarioEntry(p.name, p.family, p.modality, p.visual, p.text, len(selected[p.name]),
                                     run.scenario_path(p.name).name, extra))
    manifest = Manifest(suite_obj.name, bench.name, seed, bench.name, entries, extra={
        "source": bench.source, "limit": limit, "notes": notes, "splits": splits,
        "translator": translator, "translations": provenance, "domains": sorted(bench.domains),
        "aliases": {f"{bench.name}_{ENGLISH}": bench.name} if has_natural else {},
        "image_encoder": PNG_ENCODER,
        "similarity_filter": _filter_record(sim, similarity_filter, plans, progress),
        "seeds": "image: sha256(seed, image sha256, corruption, severity); text: sha256(seed, scenario, question_id)",
    })
    run.write_manifest(manifest)
    filt = manifest.extra["similarity_filter"]
    if filt.get("ran"):
        say(f"similarity filter ({filt['encoder']}, cosine >= {filt['threshold']}): {filt['questions']} questions, "
            f"{filt['draws']} draws; {filt['exhausted']} kept their last draw below the threshold after "
            f"{filt['max_tries']} draws")
    if console is not None:
        say(f"shift: {len(plans)} scenarios ({len(plans) - len(todo)} already done), "
            f"{work.total} corrupted images computed ({len(job_of) - work.total} reused from an earlier run)")
    return manifest


# --------------------------------------------------------------------------- questions

class _Questions:
    """The question texts of the scenarios to write, and the question_ids each text shift
    passed through. Getting the text perturbations ready (library imports, WordNet
    lookups: most of their cost) starts on a helper thread (`start`), beside the image
    work. The perturbations draw from the seeded global generators, as the corruptions
    do, so they run on the calling thread: between two image tasks once the helper is
    done (`make_if_ready`), or at the end (`result`)."""

    def __init__(self, plans: list[ScenarioPlan], selected: dict, seed: int, machine: dict, sim=None):
        self.plans, self.selected, self.seed, self.sim = plans, selected, seed, sim
        # each scenario's texts before its text shift: the question, or its translation
        self.inputs = {p.name: [s.text if p.language == ENGLISH else
                                (s.translations.get(p.language) or machine[(p.language, s.text)]) + SUFFIX
                                for s in selected[p.name]] for p in plans}
        self.done: dict | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        shifts: dict[tuple, list[str]] = {}
        for p in self.plans:
            if p.text is not None:
                shifts.setdefault((p.text.name, p.text.severity), []).extend(self.inputs[p.name])
        if shifts:
            work = [(name, severity, texts) for (name, severity), texts in sorted(shifts.items())]
            self.thread = threading.Thread(target=self._prepare, args=(work,), name="prepare-text-shifts", daemon=True)
            self.thread.start()

    def _prepare(self, work) -> None:
        from emidbench.shift.text import prepare_texts

        try:
            prepare_texts(work)
        except BaseException as e:  # re-raised on the stage's thread (e.g. WordNet missing)
            self.error = e

    def make_if_ready(self) -> None:
        if self.done is None and not (self.thread is not None and self.thread.is_alive()):
            self._make()

    def result(self) -> dict:
        if self.done is None:
            if self.thread is not None:
                self.thread.join()
            self._make()
        return self.done

    def _make(self) -> None:
        if self.error is not None:
            raise self.error
        self.done = {p.name: self._perturbed(p) for p in self.plans}

    def _perturbed(self, p: ScenarioPlan) -> tuple[list[str], list]:
        if p.text is None:
            return self.inputs[p.name], []
        from emidbench.shift.text import perturb_text

        texts, passed = [], []
        sim = self.sim if _filter_of(p, self.sim) else None
        for s, text in zip(self.selected[p.name], self.inputs[p.name]):
            seed = derive_seed(self.seed, p.name, s.question_id)
            if sim is not None:
                out = sim.perturb(text, p.text.name, p.text.severity, seed, scenario=p.name)
            else:
                out = perturb_text(text, p.text.name, p.text.severity, seed)
            if out.note:
                passed.append(s.question_id)
            texts.append(out.text)
        return texts, passed


def _translatable(plans, samples_of, models: dict, notes: list):
    """Drop the scenarios of languages that neither the benchmark nor a --translator model
    provides (noted). -> (plans, {language: English texts to machine-translate},
    {language: "benchmark"} for the languages the benchmark translates fully)."""
    langs = sorted({p.language for p in plans if p.language != ENGLISH})
    need: dict[str, list[str]] = {}
    for lang in langs:
        samples = [s for d in sorted({p.domain for p in plans if p.language == lang}, key=str) for s in samples_of[d]]
        texts = {s.text for s in samples if not s.translations.get(lang)}
        if texts:
            need[lang] = sorted(texts)
    provenance = {lang: "benchmark" for lang in langs if lang not in need}
    skipped = [lang for lang in need if not models or (None not in models and lang not in models)]
    if skipped:
        why = "no --translator" if not models else "no --translator model for them"
        notes.append(f"languages skipped (the benchmark has no translations for some of their questions, "
                     f"{why}): {', '.join(skipped)}")
        plans = [p for p in plans if p.language not in skipped]
    for lang in [m for m in models if m is not None and m not in langs]:
        notes.append(f"--translator model for {lang} unused: the suite has no {lang} scenarios")
    return plans, {lang: texts for lang, texts in need.items() if lang not in skipped}, provenance


def _languages(plans, samples_of, translator, run: RunDir, notes: list):
    """Drop the languages nothing can provide (noted); machine-translate what the benchmark
    lacks. -> (plans, {(language, English text): translation}, {language: provenance},
    the updated translation cache or None)."""
    models = parse_translator(translator)
    plans, wanted, provenance = _translatable(plans, samples_of, models, notes)
    machine: dict[tuple, str] = {}
    if not wanted:
        return plans, machine, provenance, None
    # languages the benchmark translates for some of their questions only
    partly = {lang for lang in wanted for p in plans if p.language == lang
              for s in samples_of[p.domain] if s.translations.get(lang)}
    cache = _load_translations(run)
    changed = False
    by_model: dict[str, list[str]] = {}
    for lang in wanted:
        by_model.setdefault(models.get(lang, models.get(None)), []).append(lang)
    for model_id, model_langs in by_model.items():
        done = cache.get(model_id, {})
        todo = {lang: [t for t in wanted[lang] if t not in done.get(lang, {})] for lang in model_langs}
        tr = None
        if any(todo.values()):
            tr = Translator(model_id)
            tr.check_languages(model_langs)
        for lang in model_langs:
            got = dict(done.get(lang, {}))
            if todo[lang]:
                got.update(zip(todo[lang], tr(todo[lang], lang)))
                cache.setdefault(model_id, {})[lang] = got
                changed = True
            machine.update({(lang, t): got[t] for t in wanted[lang]})
            provenance[lang] = (f"benchmark + translator:{model_id} (for {len(wanted[lang])} questions)"
                                if lang in partly else f"translator:{model_id}")
    return plans, machine, provenance, cache if changed else None


def _load_translations(run: RunDir) -> dict:
    path = run.shifts / TRANSLATIONS
    try:
        data = read_json(path) if path.exists() else {}
    except UserError:
        return {}  # a damaged cache is only a cache
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- helpers

def _split(bench: Benchmark, domain: str, embedder, paper_split: dict | None) -> dict:
    from emidbench.shift.split import natural_split, split_from_index

    if paper_split is not None:
        return split_from_index(paper_split, bench.domains[domain])
    return natural_split(bench.samples, bench.domains[domain], embedder)


def _select(samples: list[Sample], split: dict | None, which: str | None) -> list[Sample]:
    if not which:
        return samples
    keep = set(split[which])
    return [s for s in samples if s.question_id in keep]


def _filter_record(sim, asked: str | None, plans: list[ScenarioPlan], progress: "_Progress") -> dict:
    """Whether MM_Robustness's similarity filter ran, with what, and its counts."""
    if sim is None:
        why = "not asked (--similarity-filter)" if asked is None else "no synonym-replacement scenario in the suite"
        return {"ran": False, "why": why}
    per = [progress.similarity(p.name) or {} for p in plans if _filter_of(p, sim)]
    return {**sim.record(), **{k: sum(int(d.get(k, 0)) for d in per) for k in ("questions", "draws", "exhausted")}}


def _filter_of(p: ScenarioPlan, sim) -> str | None:
    """The similarity filter's identity for a scenario it applies to, else None."""
    return sim.identity if sim is not None and p.text is not None and p.text.name in SIMILARITY_FILTERED else None


def _fingerprint(p: ScenarioPlan, samples: list[Sample], machine: dict, seed: int, sim: str | None = None) -> str:
    """sha256 of everything the scenario's file is made from."""
    parts = [[p.name, p.family, p.visual and p.visual.to_json(), p.text and p.text.to_json(), p.domain, p.language,
              p.split, seed, PNG_ENCODER if p.visual else None] + ([sim] if sim else [])]
    for s in samples:
        parts.append([s.question_id, s.image_hash, s.text, s.reference, s.category, s.context,
                      s.translations.get(p.language), machine.get((p.language, s.text))])
    return content_hash(json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"))


def _check_image_sizes(plans: list[ScenarioPlan], samples_of: dict) -> None:
    """Refuse images a corruption cannot take, before any work starts."""
    seen: set = set()
    for d in sorted({p.domain for p in plans if p.visual is not None}, key=str):
        for s in samples_of[d]:
            h = s.image_hash
            if h in seen:
                continue
            seen.add(h)
            try:
                w, hgt = Image.open(io.BytesIO(s.image)).size
            except Exception:
                s.open_image()  # raises the loader's clear UserError
                raise
            if min(w, hgt) < MIN_SIDE:
                raise UserError(f"sample {s.question_id} ({s.image_name}): image is {w}x{hgt} px; image corruptions "
                                f"need at least {MIN_SIDE} px on each side (resize the benchmark's images, or use a "
                                "suite without visual shifts)")


class _Progress:
    """RUN/shifts/.progress.json: scenario -> fingerprint of its inputs, sha256 of its file,
    question_ids its text shift passed through."""

    def __init__(self, run: RunDir):
        self.run = run
        self.path = run.shifts / PROGRESS
        try:
            data = read_json(self.path) if self.path.exists() else {}
        except UserError:
            data = {}  # damaged bookkeeping: redo everything rather than trust it
        self.data = data if isinstance(data, dict) else {}
        self._intact: dict[str, bool] = {}

    def is_done(self, name: str, fp: str, run: RunDir) -> bool:
        """Its inputs are unchanged, its file is the one written, and so are its images (a
        lost or damaged image makes the scenario, and that image, be made again)."""
        rec = self.data.get(name) or {}
        path = run.scenario_path(name)
        if not (rec.get("fingerprint") == fp and path.is_file() and content_hash(path.read_bytes()) == rec.get("file")):
            return False
        return all(self.image_intact(str(r.get("image"))) for _, r in iter_jsonl(path))

    def image_intact(self, name: str) -> bool:
        """RunDir.image_intact, each image hashed once per run (scenarios share images)."""
        if name not in self._intact:
            self._intact[name] = self.run.image_intact(name)
        return self._intact[name]

    def passed(self, name: str) -> list:
        return (self.data.get(name) or {}).get("passed_through", [])

    def similarity(self, name: str) -> dict | None:
        return (self.data.get(name) or {}).get("similarity")

    def mark(self, name: str, fp: str, run: RunDir, passed: list, similarity: dict | None = None) -> None:
        self.data[name] = {"fingerprint": fp, "file": content_hash(run.scenario_path(name).read_bytes()),
                           "passed_through": passed}
        if similarity is not None:
            self.data[name]["similarity"] = dict(similarity)
        atomic_write_json(self.path, self.data)


def scenario_sizes(plans: list[ScenarioPlan], bench: Benchmark) -> dict[str, int]:
    """Questions per scenario, without computing the natural split (halves of a domain)."""
    out = {}
    for p in plans:
        n = len(bench.samples if p.domain is None else bench.domains[p.domain])
        out[p.name] = {"easy": n // 2, "hard": n - n // 2}.get(p.split, n)
    return out


def print_plan(plans: list[ScenarioPlan], bench: Benchmark, suite: Suite, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    sizes = scenario_sizes(plans, bench)
    distinct = {(s.image_hash, p.visual.name, p.visual.severity) for p in plans if p.visual
                for s in (bench.samples if p.domain is None else bench.domains[p.domain])}
    table = Table(title=f"suite {suite.name} on {bench.name}: {len(plans)} scenarios "
                        f"({len(plans) - 1} shifts + the ID set), {len(distinct)} distinct corrupted images")
    # the name is what a user copies (--scenarios globs): never cut; one "shift" column keeps 80 columns
    table.add_column("scenario", no_wrap=True)
    table.add_column("family")
    table.add_column("shift")
    table.add_column("n", justify="right")
    for p in plans:
        parts = [f"{p.domain} {p.split}" if p.domain else "",
                 f"{p.visual.name} {p.visual.severity}" if p.visual else "",
                 f"{p.text.name} {p.text.severity}" if p.text else "",
                 p.language if (p.family == "natural" or p.language != ENGLISH) else ""]
        table.add_row(p.name, p.family, " + ".join(x for x in parts if x) or "none (ID)", str(sizes[p.name]))
    (console or Console()).print(table)
