"""`emidbench shift`: a benchmark and a suite -> RUN/shifts/.

Work is organised so nothing is done twice: every distinct (image, corruption,
severity) is corrupted once and shared by every scenario that uses it (the joint
synthetic scenarios reuse the visual-only ones' images; text-only scenarios reuse the ID
images); every image is stored once under its content hash. Randomness is derived from
what identifies a piece of work — (seed, image hash, corruption, severity) for an image,
(seed, scenario, question_id) for a text — so results do not depend on order, process
or --workers.

Resume: a scenario file is written atomically and its fingerprint (what it was made
from) recorded in RUN/shifts/.progress.json; a rerun skips scenarios whose file and
fingerprint match. The manifest is written last: its presence means the stage finished.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from emidbench.benchmarks.base import Benchmark, Sample, decode_image, image_format
from emidbench.errors import UserError
from emidbench.rundir import Manifest, RunDir, ScenarioEntry, atomic_write_json, read_json
from emidbench.shift.seeding import derive_seed
from emidbench.shift.suites import ENGLISH, ScenarioPlan, load_suite, plan_scenarios
from emidbench.shift.translate import SUFFIX, Translator
from emidbench.shift.visual import MIN_SIDE, corrupt_image

PNG_LEVEL = 1  # lossless; level 1 is several times faster to encode than Pillow's default 6


def encode_png_fast(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def _corrupt_job(job: tuple) -> bytes:
    """One distinct (image, corruption, severity): module-level so worker processes can run it."""
    data, name, severity, seed = job
    img = decode_image(data, "image")
    return encode_png_fast(corrupt_image(img, name, severity, seed))


def run_shift(
    benchmark: Benchmark,
    suite: str | Path,
    out: Path,
    seed: int = 0,
    workers: int = 1,
    limit: int | None = None,
    dry_run: bool = False,
    translator: str | None = None,
    split_embedder=None,
    console=None,
) -> Manifest:
    bench = benchmark.limit(limit)
    suite_obj = load_suite(suite)
    plans = plan_scenarios(suite_obj, bench.name, sorted(bench.domains))
    notes: list[str] = []
    say = (lambda m: console.print(m, highlight=False, soft_wrap=True)) if console else (lambda m: None)
    if _has_splits(suite_obj) and not bench.domains:
        notes.append(f"natural domain splits skipped: benchmark {bench.name} has no second visual domain "
                     "(attach one with --domain NAME=SPEC)")
    if dry_run:
        _print_plan(plans, bench, console)
        return Manifest(suite_obj.name, bench.name, seed, bench.name, [])

    _check_image_sizes(bench, plans)
    run = RunDir(out)
    samples_of = {None: bench.samples, **bench.domains}

    # Languages: benchmark translations, else a translator, else skip (with a note).
    langs = sorted({p.language for p in plans if p.language != ENGLISH})
    missing = {lang: [s for d in {p.domain for p in plans if p.language == lang}
                      for s in samples_of[d] if lang not in s.translations] for lang in langs}
    machine: dict[tuple, str] = {}
    if any(missing.values()):
        if translator:
            tr = Translator(translator)
            for lang, samples in missing.items():
                texts = sorted({s.text for s in samples})
                machine.update({(lang, t): o for t, o in zip(texts, tr(texts, lang))})
        else:
            skipped = sorted(lang for lang, samples in missing.items() if samples)
            notes.append(f"languages skipped (no translations in the benchmark and no --translator): "
                         f"{', '.join(skipped)}")
            plans = [p for p in plans if p.language not in skipped]
    for n in notes:
        say(f"note: {n}")

    # Natural-domain splits.
    splits: dict[str, dict] = {}
    for domain in sorted({p.domain for p in plans if p.domain}):
        from emidbench.shift.split import natural_split

        splits[domain] = natural_split(bench.samples, bench.domains[domain], split_embedder)

    # Every distinct corruption job, computed once.
    jobs: dict[tuple, tuple] = {}
    for p in plans:
        if p.visual:
            for s in samples_of[p.domain]:
                key = (_hash(s.image), p.visual.name, p.visual.severity)
                jobs.setdefault(key, (s.image, p.visual.name, p.visual.severity, derive_seed(seed, *key)))

    progress = _Progress(run)
    fingerprints = {p.name: _fingerprint(p, samples_of, splits, machine, seed) for p in plans}
    todo = [p for p in plans if not progress.is_done(p.name, fingerprints[p.name], run)]
    needed = {(_hash(s.image), p.visual.name, p.visual.severity) for p in todo if p.visual
              for s in samples_of[p.domain]}
    stored = _compute_images({k: v for k, v in jobs.items() if k in needed}, run, workers, console)
    originals: dict[str, str] = {}

    entries = []
    for p in plans:
        samples = _select(samples_of[p.domain], splits.get(p.domain), p.split)
        fp = fingerprints[p.name]
        passed: list = []
        if p in todo:
            records = []
            for s in samples:
                h = _hash(s.image)
                if p.visual:
                    image = stored[(h, p.visual.name, p.visual.severity)]
                else:
                    if h not in originals:
                        originals[h] = run.put_image(s.image, image_format(s.image))
                    image = originals[h]
                text = _question(s, p, seed, machine, passed)
                rec = {"question_id": s.question_id, "image": image, "text": text, "category": s.category,
                       "reference": s.reference}
                if s.context is not None:
                    rec["context"] = s.context
                records.append(rec)
            run.write_scenario(p.name, records)
            progress.mark(p.name, fp, passed)
        extra = {**p.extra(), **({"passed_through": progress.passed(p.name)} if progress.passed(p.name) else {})}
        if p.name == bench.name and any(q.family == "natural" for q in plans):
            extra["alias"] = f"{bench.name}_{ENGLISH}"
        entries.append(ScenarioEntry(p.name, p.family, p.modality, p.visual, p.text, len(samples),
                                     f"{p.name}.jsonl", extra))

    manifest = Manifest(suite_obj.name, bench.name, seed, bench.name, entries,
                        extra={"source": bench.source, "limit": limit, "notes": notes,
                               "splits": splits, "translator": translator,
                               "domains": sorted(bench.domains)})
    run.write_manifest(manifest)
    say(f"shift: {len(plans)} scenarios ({len(plans) - len(todo)} already done), "
        f"{len(needed)} distinct corrupted images")
    return manifest


def _has_splits(suite) -> bool:
    return bool(suite.splits) or any(_has_splits(p) for p in suite.parts)


def _question(s: Sample, p: ScenarioPlan, seed: int, machine: dict, passed: list) -> str:
    text = s.text
    if p.language != ENGLISH:
        text = (s.translations.get(p.language) or machine[(p.language, s.text)]) + SUFFIX
    if p.text:
        from emidbench.shift.text import perturb_text

        out = perturb_text(text, p.text.name, p.text.severity, derive_seed(seed, p.name, s.question_id))
        if out.note:
            passed.append(s.question_id)
        text = out.text
    return text


def _select(samples: list[Sample], split: dict | None, which: str | None) -> list[Sample]:
    if not which:
        return samples
    keep = set(split[which])
    return [s for s in samples if s.question_id in keep]


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fingerprint(p: ScenarioPlan, samples_of: dict, splits: dict, machine: dict, seed: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([p.name, p.family, str(p.visual), str(p.text), p.domain, p.language, p.split, seed],
                        sort_keys=True).encode())
    for s in _select(samples_of[p.domain], splits.get(p.domain), p.split):
        h.update(json.dumps([s.question_id, _hash(s.image), s.text, s.reference, s.category, s.context,
                             s.translations.get(p.language), machine.get((p.language, s.text))]).encode())
    return h.hexdigest()


def _compute_images(jobs: dict, run: RunDir, workers: int, console) -> dict:
    """Corrupt each distinct (image, corruption, severity) once; store; key -> image name."""
    keys = sorted(jobs)
    out: dict = {}
    if not keys:
        return out
    progress = None
    if console is not None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        progress = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=console, transient=True)
        task = progress.add_task("corrupting images", total=len(keys))
        progress.start()
    try:
        if workers > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                results = pool.map(_corrupt_job, (jobs[k] for k in keys), chunksize=4)
                for key, png in zip(keys, results):
                    out[key] = run.put_image(png, "png")
                    if progress:
                        progress.advance(task)
        else:
            for key in keys:
                out[key] = run.put_image(_corrupt_job(jobs[key]), "png")
                if progress:
                    progress.advance(task)
    finally:
        if progress:
            progress.stop()
    return out


def _check_image_sizes(bench: Benchmark, plans: list[ScenarioPlan]) -> None:
    """Refuse images a corruption cannot take, before any work starts."""
    domains = {p.domain for p in plans if p.visual}
    for d in domains:
        for s in ([*bench.samples] if d is None else bench.domains[d]):
            w, h = Image.open(io.BytesIO(s.image)).size
            if min(w, h) < MIN_SIDE:
                raise UserError(f"sample {s.question_id} ({s.image_name}): image is {w}x{h} px; image corruptions "
                                f"need at least {MIN_SIDE} px on each side")


class _Progress:
    """RUN/shifts/.progress.json: scenario -> fingerprint of the inputs its file was made from."""

    def __init__(self, run: RunDir):
        self.path = run.shifts / ".progress.json"
        self.data = read_json(self.path) if self.path.exists() else {}

    def is_done(self, name: str, fp: str, run: RunDir) -> bool:
        return self.data.get(name, {}).get("fingerprint") == fp and run.scenario_path(name).is_file()

    def passed(self, name: str) -> list:
        return self.data.get(name, {}).get("passed_through", [])

    def mark(self, name: str, fp: str, passed: list) -> None:
        self.data[name] = {"fingerprint": fp, "passed_through": passed}
        atomic_write_json(self.path, self.data)


def _print_plan(plans: list[ScenarioPlan], bench: Benchmark, console) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(plans)} scenarios on {bench.name}")
    for col in ("scenario", "family", "modality", "visual", "text", "domain/split"):
        table.add_column(col)
    for p in plans:
        table.add_row(p.name, p.family, p.modality, f"{p.visual.name} {p.visual.severity}" if p.visual else "",
                      f"{p.text.name} {p.text.severity}" if p.text else (p.language if p.language != ENGLISH else ""),
                      f"{p.domain} {p.split}" if p.domain else "")
    (console or Console()).print(table)
