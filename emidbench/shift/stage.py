"""`emidbench shift`: a benchmark and a suite -> RUN/shifts/.

    stage.py    run_shift: checks, languages, the work, the scenario files, the manifest
    plan.py     each scenario's samples, fingerprints, input checks, the dry-run table
    images.py   the image jobs (corrupt, encode, store; worker processes; the image index)
    texts.py    question texts: translations, text perturbations, the similarity filter

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

import sys
from dataclasses import replace
from pathlib import Path

from emidbench.benchmarks.base import Benchmark
from emidbench.benchmarks.choices import DEFAULT_TEMPLATE, answer_line, render_question
from emidbench.common.errors import UserError
from emidbench.common.hashing import content_hash
from emidbench.common.images import image_format
from emidbench.common.io import atomic_write_json, iter_jsonl, read_json
from emidbench.rundir import RunDir
from emidbench.rundir.manifest import Manifest, ScenarioEntry
from emidbench.shift.domains import by_domain, icl_examples, scenario_domain_name
from emidbench.shift.images import ImageIndex, ImageWork, image_jobs
from emidbench.shift.options import ShiftOptions
from emidbench.shift.plan import check_image_sizes, domain_split, print_plan, scenario_fingerprint, select
from emidbench.shift.suites import ENGLISH, Suite, load_suite, plan_scenarios
from emidbench.shift.texts import (
    SIMILARITY_FILTERED,
    TRANSLATIONS,
    Questions,
    filter_of,
    filter_record,
    languages,
    translatable,
)
from emidbench.shift.translate import parse_translator
from emidbench.shift.visual import PNG_ENCODER

PROGRESS = ".progress.json"


def run_shift(benchmark: Benchmark, suite: str | Path | Suite, out: Path, options: ShiftOptions | None = None,
              console=None, **kwargs) -> Manifest:
    """Write RUN/shifts/ for `benchmark` under `suite` (a built-in name, a YAML path or a
    Suite); returns the manifest. options: a ShiftOptions, or its fields as keywords
    (seed=1, workers=2, ...; shift/options.py). `split_embedder` ranks a second domain's
    images for its easy/hard split: an embedder object, or a name (`pixel`, the default;
    `paper`; `offline`) built with `split_options`. Everything that can be wrong with the inputs is
    checked before anything is written. `split_index`: the paper's released easy/hard split
    (split.read_split_index) instead of computing one. `similarity_filter`: a sentence
    encoder (hub id or folder, or a text.similarity.SimilarityFilter) for MM_Robustness's
    filter on synonym replacement (text/similarity.py). `id_domain`, `per_class`, `icl`,
    `icl_source`: a domain suite's settings, over the suite's own (domains.py)."""
    o = ShiftOptions.of(options, kwargs, "run_shift")
    o.check()
    seed, workers, translator, split_embedder = o.seed, o.workers, o.translator, o.split_embedder
    say = _sayer(console)
    suite_obj = suite if isinstance(suite, Suite) else load_suite(suite)
    suite_obj, domains = _domain_suite(benchmark, suite_obj, o)
    bench = domains.bench if domains else benchmark.limit(o.limit)
    plans = plan_scenarios(bench, suite_obj, id_domain=domains and domains.id_domain)
    samples_of: dict = {None: bench.samples, **bench.domains}
    notes = _plan_notes(bench, suite_obj, domains)
    if o.dry_run:  # the plan as a run would make it: languages nothing can provide are left out (noted)
        plans = translatable(plans, samples_of, parse_translator(translator), notes)[0]
        for n in notes:
            say(f"note: {n}")
        print_plan(plans, bench, suite_obj, console)
        return Manifest(suite_obj.name, bench.name, seed, bench.name, [])

    # Every check of the inputs before anything is written.
    paper_split = _paper_split(o.split_index, plans, bench, notes)
    sim = _similarity_filter(o.similarity_filter, plans)
    check_image_sizes(plans, samples_of)
    # an ICL scenario's examples (K > an item's pool: refused here); its items are its whole domain
    examples = icl_examples(plans, {p.name: samples_of[p.domain] for p in plans if p.icl}, domains, seed) \
        if domains else {}
    split_embedder = _split_embedder(split_embedder, o.split_options)

    run = RunDir(out)
    # Languages: the benchmark's translations, else the translator, else skipped (with a note).
    plans, machine, provenance, cache = languages(plans, samples_of, translator, run, notes)
    for n in notes:
        say(f"note: {n}")
    splits = {d: domain_split(bench, d, split_embedder, paper_split)
              for d in sorted({p.domain for p in plans if p.domain and p.split})}
    selected = {p.name: select(samples_of[p.domain], splits.get(p.domain), p.split) for p in plans}

    # From here on, files change: the manifest goes first (its presence means "finished").
    run.shifts.mkdir(parents=True, exist_ok=True)
    run.manifest_path.unlink(missing_ok=True)
    if cache is not None:
        atomic_write_json(run.shifts / TRANSLATIONS, cache)

    progress = ShiftProgress(run)
    template = suite_obj.question_template  # choice tasks' question wording (None: Zhang et al.'s)
    fingerprints = {p.name: scenario_fingerprint(p, selected[p.name], machine, seed, filter_of(p, sim), template,
                                                 examples.get(p.name)) for p in plans}
    todo = [p for p in plans if not progress.is_done(p.name, fingerprints[p.name], run)]

    index = ImageIndex(run, intact=progress.image_intact)
    job_of, missing, sources = image_jobs(todo, selected, seed, index)
    work = ImageWork(run, index, missing, sources, workers, console)
    questions = _images_and_questions(work, Questions(todo, selected, seed, machine, sim), index)
    _write_scenarios(run, todo, selected, questions, job_of, index, progress, fingerprints, sim, template, examples)

    manifest = _manifest(bench, suite_obj, plans, selected, fingerprints, progress, provenance, sim, seed, run, extra={
        "source": bench.source, "limit": o.limit, "notes": notes, "splits": splits,
        "translator": translator, "translations": provenance, "domains": sorted(bench.domains),
        "image_encoder": PNG_ENCODER,
        "similarity_filter": filter_record(sim, o.similarity_filter, plans, progress),
        "seeds": "image: sha256(seed, image sha256, corruption, severity); text: sha256(seed, scenario, question_id)",
        **_choice_record(bench, template),
        **({"domain_suite": {**suite_obj.domain_setup().record(), **domains.record}} if domains else {}),
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


def _plan_notes(bench: Benchmark, suite: Suite, domains) -> list[str]:
    """What the plan leaves out or chooses on its own, said before any work (and kept in
    the manifest's notes)."""
    notes: list[str] = list(bench.notes)  # what the loader left out (rows with several labels)
    if domains and domains.record["chosen_by"] == "first domain":
        notes.append(f"domain suite: ID domain {domains.id_domain!r}, the benchmark's first "
                     "(--id-domain picks another)")
    if any(s.splits for s in suite.flatten()) and not bench.domains:
        notes.append(f"natural domain splits skipped: benchmark {bench.name} has no second visual domain "
                     "(attach one with --domain NAME=SPEC)")
    return notes


def _domain_suite(benchmark: Benchmark, suite: Suite, o: ShiftOptions):
    """(suite, Domains) for a domain suite — the command line's settings over the suite's,
    the benchmark regrouped by domain and sampled; (suite, None) for any other suite."""
    setup = suite.domain_setup()
    given = {"--id-domain": o.id_domain, "--per-class": o.per_class, "--icl": o.icl, "--icl-source": o.icl_source}
    if setup is None:
        used = [k for k, v in given.items() if v is not None]
        if used:
            raise UserError(f"{', '.join(used)}: suite {suite.name} has no domains section; use a domain suite "
                            "(--suite domains, or a YAML file with `domains:`)")
        return suite, None
    setup = setup.with_options(o.id_domain, o.per_class, o.icl, o.icl_source)
    return replace(suite, domains=setup), by_domain(benchmark, setup, o.seed, o.limit)


def _sayer(console):
    def say(msg: str) -> None:
        if console is not None:
            console.print(msg, highlight=False, soft_wrap=True)
        else:
            print(msg, file=sys.stderr)

    return say


def _paper_split(split_index, plans, bench: Benchmark, notes: list) -> dict | None:
    """The paper's released easy/hard split (--split-index), checked against the suite."""
    if split_index is None:
        return None
    from emidbench.shift.split import read_split_index

    paper_split = read_split_index(split_index)
    if not any(p.split for p in plans):
        notes.append(f"--split-index {Path(split_index).name} unused: no scenario of the suite splits a domain")
    elif len(bench.domains) != 1:
        raise UserError(f"--split-index gives one domain's split; benchmark {bench.name} has "
                        f"{len(bench.domains)} second domains ({', '.join(sorted(bench.domains)) or 'none'})")
    return paper_split


def _similarity_filter(similarity_filter, plans):
    """MM_Robustness's filter, when asked and a scenario of the suite replaces synonyms."""
    if similarity_filter is None or not any(p.text is not None and p.text.name in SIMILARITY_FILTERED
                                            for p in plans):
        return None
    from emidbench.shift.text.similarity import SimilarityFilter

    # a name is loaded; a SimilarityFilter object is used as it is (its counts start anew)
    sim = SimilarityFilter(similarity_filter) if isinstance(similarity_filter, str) else similarity_filter
    sim.stats = {}
    return sim


def _split_embedder(split_embedder, split_options):
    """An embedder object as given, or one built by name (default: pixel)."""
    if split_embedder is not None and not isinstance(split_embedder, str):
        return split_embedder
    from emidbench.shift.split import split_embedder as named_embedder

    return named_embedder(split_embedder, split_options)


def _images_and_questions(work: ImageWork, texts: Questions, index: ImageIndex) -> dict:
    """The image jobs and the question texts, overlapped; -> the texts per scenario."""
    if work.tasks:
        # imported here first, so that two threads are never inside the same packages'
        # imports at once (an import cycle across threads is a deadlock error)
        import imagecorruptions  # noqa: F401
    try:
        texts.start()  # the helper thread's imports and lookups overlap the image work
        work.start()
        work.finish(between=texts.make_if_ready)  # a failed helper (no WordNet) stops the work early
        return texts.result()
    finally:
        index.close()


def _choice_record(bench: Benchmark, template: str | None) -> dict:
    """The manifest's note of a choice benchmark: the question template the lines use."""
    if not any(s.is_choice for ss in [bench.samples, *bench.domains.values()] for s in ss):
        return {}
    return {"choice_template": template or DEFAULT_TEMPLATE}


def _write_scenarios(run: RunDir, todo, selected: dict, questions: dict, job_of: dict, index: ImageIndex,
                     progress: "ShiftProgress", fingerprints: dict, sim, template: str | None = None,
                     examples: dict | None = None) -> None:
    """Each scenario still to write, atomically, then marked done with its fingerprint."""
    originals: dict[str, str] = {}

    def original(s) -> str:
        if s.image_hash not in originals:
            data = s.read_image()
            originals[s.image_hash] = run.put_image(data, image_format(data))
        return originals[s.image_hash]

    for p in todo:
        records = []
        per_item = (examples or {}).get(p.name)
        for i, (s, text) in enumerate(zip(selected[p.name], questions[p.name][0])):
            h = s.image_hash
            if p.visual is not None:
                image = index.done[job_of[(h, p.visual.name, p.visual.severity)].key]
            else:
                image = original(s)
            rec = {"question_id": s.question_id, "image": image, "text": text, "category": s.category,
                   "reference": s.reference}
            if s.context is not None:
                rec["context"] = s.context
            rec.update(choice_fields(s, text, per_item[i] if per_item is not None else None, original, template))
            records.append(rec)
        run.write_scenario(p.name, records)
        progress.mark(p.name, fingerprints[p.name], run, questions[p.name][1],
                      similarity=sim.stats.get(p.name) if filter_of(p, sim) else None)


def choice_fields(s, text: str, examples: list | None, image_name, template: str | None) -> dict:
    """A line's choice-task fields (benchmarks/choices.py): the question — the stem after its
    text shift — rendered through the template with the options (never perturbed), the
    options, the domain, and an ICL scenario's examples (each stored as its original image).
    `image_name(sample)` stores an image and gives its name. {} for an open-ended sample."""
    out: dict = {}
    if s.is_choice:
        out.update(text=render_question(text, s.choices, template, with_examples=bool(examples)),
                   choices=list(s.choices), reference=s.reference)
    if s.domain is not None:
        out["domain"] = s.domain
    if examples is not None:
        out["examples"] = [{"image": image_name(e),
                            "text": render_question(e.text, e.choices, template) if e.is_choice else e.text,
                            "answer": answer_line(e.reference) if e.is_choice else e.reference}
                           for e in examples]
    return out


def _manifest(bench: Benchmark, suite: Suite, plans, selected: dict, fingerprints: dict, progress: "ShiftProgress",
              provenance: dict, sim, seed: int, run: RunDir, extra: dict) -> Manifest:
    """The stage's record: one entry per scenario (its shifts, n, provenance)."""
    entries = []
    has_natural = any(p.family == "natural" for p in plans)
    for p in plans:
        extra_p = {**p.extra(), "fingerprint": fingerprints[p.name]}
        passed = progress.passed(p.name)
        if passed:
            extra_p["passed_through"] = passed
        if p.language != ENGLISH:
            extra_p["translation"] = provenance[p.language]
        if filter_of(p, sim):
            extra_p["similarity_filter"] = progress.similarity(p.name)
        if p.family == "id" and has_natural:
            extra_p["alias"] = f"{bench.name}_{ENGLISH}"
        entries.append(ScenarioEntry(p.name, p.family, p.modality, p.visual, p.text, len(selected[p.name]),
                                     run.scenario_path(p.name).name, extra_p))
    aliases = {f"{bench.name}_{ENGLISH}": bench.name} if has_natural else {}
    if suite.domain_setup() is not None:  # a domain suite's ID set is also <name>_<ID domain>
        id_domain = extra.get("domain_suite", {}).get("id_domain")
        if id_domain is not None:
            aliases[f"{bench.name}_{scenario_domain_name(id_domain)}"] = bench.name
    return Manifest(suite.name, bench.name, seed, bench.name, entries, extra={**extra, "aliases": aliases})


class ShiftProgress:
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
        """Its inputs are unchanged, its file is the one written, and so are its images, an
        ICL scenario's example images included (a lost or damaged image makes the scenario,
        and that image, be made again)."""
        rec = self.data.get(name) or {}
        path = run.scenario_path(name)
        if not (rec.get("fingerprint") == fp and path.is_file() and content_hash(path.read_bytes()) == rec.get("file")):
            return False
        return all(self.image_intact(str(r.get("image")))
                   and all(self.image_intact(str(e.get("image"))) for e in r.get("examples") or ())
                   for _, r in iter_jsonl(path))

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
