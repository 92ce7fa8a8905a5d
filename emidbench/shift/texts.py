"""The shift stage's question texts: languages (the benchmark's translations, a
--translator's, or skipped with a note), text perturbations (prepared on a helper thread
beside the image work, drawn on the stage's thread), and MM_Robustness's similarity
filter on synonym replacement."""

from __future__ import annotations

import threading

from emidbench.common.errors import UserError
from emidbench.common.hashing import derive_seed
from emidbench.common.io import read_json
from emidbench.rundir import RunDir
from emidbench.shift.suites import ENGLISH, ScenarioPlan
from emidbench.shift.translate import SUFFIX, Translator, parse_translator

TRANSLATIONS = ".translations.json"
SIMILARITY_FILTERED = ("sr", "synonym")  # MM_Robustness filtered its EDA perturbations
# Libraries the text perturbations use that draw from Python's global generator when
# imported (nltk 3.10 does): imported on the stage's thread before the helper thread
# starts, never beside the seeded corruptions (a draw there would change their numbers).
RNG_TOUCHING_IMPORTS = ("nltk",)


class Questions:
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
            import importlib

            for module in RNG_TOUCHING_IMPORTS:
                importlib.import_module(module)
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
        sim = self.sim if filter_of(p, self.sim) else None
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


def translatable(plans, samples_of, models: dict, notes: list):
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


def languages(plans, samples_of, translator, run: RunDir, notes: list):
    """Drop the languages nothing can provide (noted); machine-translate what the benchmark
    lacks. -> (plans, {(language, English text): translation}, {language: provenance},
    the updated translation cache or None)."""
    models = parse_translator(translator)
    plans, wanted, provenance = translatable(plans, samples_of, models, notes)
    machine: dict[tuple, str] = {}
    if not wanted:
        return plans, machine, provenance, None
    # languages the benchmark translates for some of their questions only
    partly = {lang for lang in wanted for p in plans if p.language == lang
              for s in samples_of[p.domain] if s.translations.get(lang)}
    cache = load_translations(run)
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


def load_translations(run: RunDir) -> dict:
    path = run.shifts / TRANSLATIONS
    try:
        data = read_json(path) if path.exists() else {}
    except UserError:
        return {}  # a damaged cache is only a cache
    return data if isinstance(data, dict) else {}


def filter_record(sim, asked: str | None, plans: list[ScenarioPlan], progress) -> dict:
    """Whether MM_Robustness's similarity filter ran, with what, and its counts."""
    if sim is None:
        why = "not asked (--similarity-filter)" if asked is None else "no synonym-replacement scenario in the suite"
        return {"ran": False, "why": why}
    per = [progress.similarity(p.name) or {} for p in plans if filter_of(p, sim)]
    return {**sim.record(), **{k: sum(int(d.get(k, 0)) for d in per) for k in ("questions", "draws", "exhausted")}}


def filter_of(p: ScenarioPlan, sim) -> str | None:
    """The similarity filter's identity for a scenario it applies to, else None."""
    return sim.identity if sim is not None and p.text is not None and p.text.name in SIMILARITY_FILTERED else None
