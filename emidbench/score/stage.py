"""`emidbench score`: RUN/shifts + RUN/responses/<model> -> RUN/scores/<model>/.

    metrics.csv             one row per scenario, manifest order (METRIC_COLUMNS): item
                            counts, EMI, EMID, the bound and its JSD terms, judge scores,
                            accuracy/macro-F1/n_unparsed/chance of choice scenarios
                            (score/choices.py), with bootstrap CIs when asked; an empty
                            cell = not computed
    choices/<scenario>.jsonl  choice scenarios: each answer's reading (question_id,
                            reference, parsed option or null, how, correct, answer, domain)
    choices.json            per choice scenario: how its answers were read (answer line,
                            exact, letter, fuzzy, unparsed) and accuracy per class/domain
    judge/<scenario>.jsonl  one record per item: question_id, category, scores
                            [reference, model], raw judge text(s), judge, prompt version,
                            failed (only with --judge)
    club.pt                 only with --estimator fit-per-model: this model's own estimator
                            (club-1.pt ... with --estimator-ensemble K)
    score.json              what was run: embedder and its identity, estimator (which one,
                            its digest, what it was fitted on, the fit's validation
                            log-likelihood), judge, settings, counts

    RUN/scores/_estimator/  the run's shared estimator (the default): club.pt (club-1.pt
                            ...) and estimator.json, fitted once on every model's pairs and
                            reused by each model's score (score/estimator.py)

Alignment. A scenario's items are its questions that have an answer, matched by
question_id (never by line number). A question with no answer line is `n_missing`; an
answer whose metadata carries an error (a failed generation) is `n_failed`; both are
left out of that scenario and counted, and the totals are printed.

Caches. Embeddings (embedders/cache.py) and judge replies (RUN/cache/judge/, one file
per reply, keyed by the judge's identity and the exact messages; the eval stage's
EntryCache, eval/cache.py) are content-addressed: a rerun embeds nothing and calls no
judge for what it has seen. Only parsable replies are cached, so a rerun asks again for
the ones that failed; a damaged judge entry (torn, not JSON, a reply that does not
parse) is a miss like the response cache's: judged again and rewritten, never an error.

Writes happen at the end, each file atomically: a run that stops (an endpoint that goes
down, Ctrl-C) leaves the previous outputs as they were and keeps every cached
embedding and judge reply it got.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from emidbench.common.errors import UserError
from emidbench.common.io import atomic_write_jsonl
from emidbench.rundir import RunDir
from emidbench.rundir.answers import read_answers
from emidbench.rundir.metrics import METRIC_COLUMNS
from emidbench.rundir.records import ScoreRecord
from emidbench.score.estimator import SHARED_DIR, mode_of
from emidbench.score.options import ScoreOptions

JUDGE_RETRIES = 2  # extra asks for a reply that failed or did not parse
ORDERS = ("reference-first", "model-first")


def run_score(run: Path, model: str, options: ScoreOptions | None = None, console=None, **kwargs) -> Path:
    """Score one model's answers in RUN; returns the path of metrics.csv. options: a
    ScoreOptions, or its fields as keywords (embedder="paper", bootstrap=1000, ...; see
    score/options.py). options.estimator: shared (default), refit, fit-per-model or a
    checkpoint path (score/estimator.py).

    The work is a sequence of named steps (STEPS), each timed; score.json's "timings"
    says where the time went."""
    from emidbench.common.progress import StepTimes

    o = ScoreOptions.of(options, kwargs, "run_score")
    o.check()
    say = (lambda m: console.print(m, highlight=False, soft_wrap=True)) if console else (lambda m: None)
    steps = StepTimes()

    rd = RunDir(run)
    manifest = rd.read_manifest()
    id_name = o.id_scenario or manifest.id_scenario
    manifest.get(id_name)  # exists, or one clear line listing the names
    _check_model(rd, model)
    mode = mode_of(o.estimator)
    club = _load_estimator(o.estimator) if mode == "path" else None  # a bad path fails before any work

    with steps.step("read answers"):
        items, counts, generation = _aligned_items(rd, manifest, model)
    missing, failed = _say_left_out(items, counts, generation, id_name, model, say)
    the_judge, rules, notes = _make_judge(o, say)
    emb = _make_embedder(o, club, say)

    with steps.step("embed"):
        cache = _embedding_cache(rd, emb)
        sets = _embed(rd, manifest, items, cache, say, console)
    say(f"score {model}: {len(sets)} scenarios; {cache.computed} new embeddings "
        f"(embedder {o.embedder}, {emb.dim}-d)")

    with steps.step("estimator"):
        clubs, est_info, per_model_fits = _estimators(rd, manifest, model, mode, club, o.estimator, items, sets,
                                                      cache, emb.identity, o.seed, o.estimator_ensemble, say,
                                                      console)
    with steps.step("metrics"):  # EMI, EMID, the bound, accuracy; the bootstrap is timed apart, inside
        rows = _score_rows(id_name, sets, clubs, o.entropy_scaler, o.bootstrap, o.seed, est_info, steps, console)
        choice_readings = _choice_scores(items, rows, o.bootstrap, o.seed, model, say)

    judge_records, judge_info = {}, None
    if the_judge is not None:
        with steps.step("judge"):
            judge_records, judge_info = _judge_step(the_judge, rules, o, items, rows, rd.cache / "judge", say,
                                                    console)

    with steps.step("write"):
        path = _write_outputs(rd, manifest, model, items, counts, rows, per_model_fits, o.estimator_ensemble,
                              judge_records, choice_readings)
    ScoreRecord(
        model=model,
        id_scenario=id_name,
        embedder={"name": o.embedder, "identity": emb.identity, **_describe(emb)},
        estimator=est_info,
        judge=judge_info,
        notes=notes,
        settings={"bootstrap": o.bootstrap, "seed": o.seed, "entropy_scaler": o.entropy_scaler,
                  "estimator_ensemble": o.estimator_ensemble},
        generation=[{"settings": s, "scenarios": scs} for s, scs in generation.items()],
        counts={"scenarios": len(manifest.scenarios), "scored_scenarios": len(sets),
                "items": sum(len(v) for v in items.values()), "missing": missing, "failed": failed,
                "distinct_embedded": _distinct_inputs(sets),
                **({"choice_items": sum(map(len, choice_readings.values())),
                    "unparsed": sum(r["parsed"] is None for rs in choice_readings.values() for r in rs),
                    "parsed_by": _parsed_by(choice_readings)}
                   if choice_readings else {})},
        timings=steps.to_json(),
    ).write(rd.score_record_path(model))
    return path


# The steps of run_score, in order, as named in score.json's timings ("bootstrap" and
# "judge" only when asked; "bootstrap" is part of "metrics").
STEPS = ("read answers", "embed", "estimator", "metrics", "bootstrap", "judge", "write")


def _check_model(rd: RunDir, model: str) -> None:
    if not model or not rd.responses_dir(model).is_dir() or Path(model).name != model or model == SHARED_DIR:
        have = ", ".join(rd.models()) or "none"
        raise UserError(f"no answers for model {model!r} in {rd.root / 'responses'} (have: {have}); "
                        "run `emidbench eval` first")


def _say_left_out(items: dict, counts: dict, generation: dict, id_name: str, model: str, say) -> tuple[int, int]:
    """The ID set must have items; what was left out, and mixed generation settings, are
    said. Returns (missing, failed)."""
    if not items[id_name]:
        raise UserError(f"the ID scenario {id_name} has no answered question for model {model}; nothing to "
                        "measure EMID against")
    missing = sum(c["n_missing"] for c in counts.values())
    failed = sum(c["n_failed"] for c in counts.values())
    if missing or failed:
        say(f"score {model}: left out {missing} questions without an answer and {failed} failed generations "
            "(per scenario: n_missing, n_failed in metrics.csv)")
    if len(generation) > 1:  # EMID would compare answers made under different settings
        kinds = "; ".join(f"{s} in {len(scs)} scenario(s), e.g. {scs[0]}" for s, scs in generation.items())
        say(f"warning: {model}'s answers were generated with different settings ({kinds}); EMID compares "
            "them as if not — rerun `emidbench eval` on every scenario with one setting")
    return missing, failed


def _make_judge(o: ScoreOptions, say):
    """The judge and its rules (built before the embedding work, so a bad spec or model
    fails at once), and the notes on options that change nothing (printed and recorded)."""
    judge, debias, judge_rules = o.judge, o.debias, o.judge_rules
    the_judge, rules, notes = None, None, []
    judge_only = " and ".join(n for n, v in (("--debias", debias), ("--judge-rules", judge_rules)) if v)
    if judge:
        from emidbench.score.judges import make_judge
        from emidbench.score.judges.protocol import Rules

        rules = Rules(judge_rules)
        the_judge = make_judge(judge, o.judge_options())
        if judge_only and str(judge).partition(":")[0] == "offline":
            notes.append(f"{judge_only} change nothing with the offline judge: it scores word overlap with the "
                         "reference, reads no prompt wording and has no position bias")
    elif judge_only:
        notes.append(f"{judge_only} have no effect without --judge")
    for note in notes:
        say(f"score: note: {note}")
    return the_judge, rules, notes


def _make_embedder(o: ScoreOptions, club, say):
    from emidbench.embedders import make_embedder

    embedder = o.embedder
    emb = make_embedder(embedder, o.embedder_options())
    if embedder != "paper" and (o.vision_encoder or o.text_encoder):
        say(f"score: --vision-encoder / --text-encoder are for the paper embedder; {embedder} ignores them")
    if club is not None and (club.x_dim, club.y_dim) != (emb.dim, emb.dim):
        raise UserError(f"estimator {o.estimator} expects {club.x_dim}-d queries and {club.y_dim}-d answers; the "
                        f"{embedder} embedder gives {emb.dim}-d vectors (the published CLUB_global.pt needs "
                        "--embedder paper)")
    return emb


def _embedding_cache(rd: RunDir, emb):
    from emidbench.embedders.cache import EmbeddingCache

    return EmbeddingCache(rd.cache / "embeddings", emb)


def _estimators(rd, manifest, model, mode, club, estimator, items, sets, cache, embedder_identity, seed, ensemble,
                say, console):
    """The estimator(s) that score this model: (clubs, their record for score.json, the
    per-model fits to save or None)."""
    if mode == "path":
        return [club], {"kind": "path", "path": str(estimator)}, None
    if mode == "fit-per-model":
        clubs, est_info = _fit_estimator(sets, seed, ensemble, say, f"score {model}", console)
        return clubs, est_info, clubs
    clubs, est_info = _shared_estimator(rd, manifest, model, items, sets, cache, embedder_identity, mode, seed,
                                        ensemble, say, console)
    return clubs, est_info, None


def _score_rows(id_name, sets, clubs, entropy_scaler, bootstrap, seed, est_info, steps, console) -> dict:
    """Per scenario, its metrics row; with an ensemble, est_info gets how far the K
    estimators disagree (the noise a single fit would carry)."""
    spread = {} if len(clubs) > 1 else None
    rows = {r["scenario"]: r for r in _score(id_name, sets, clubs, entropy_scaler, bootstrap, seed, spread, steps,
                                             console)}
    if spread is not None:
        sds = [v for sc, v in spread.items() if sc != id_name]
        est_info["emid_sd_across_estimators"] = {
            "median": float(np.median(sds)) if sds else 0.0, "max": float(np.max(sds)) if sds else 0.0,
            "per_scenario": spread}
    return rows


def _judge_step(the_judge, rules, o: ScoreOptions, items, rows, cache_dir, say, console):
    """Judge every item (cached), add the judge's columns to `rows`; returns (the judge
    records per scenario, the judge's record for score.json)."""
    from emidbench.score.judges.protocol import aggregate

    judge, judge_rules, debias, bootstrap, seed = o.judge, o.judge_rules, o.debias, o.bootstrap, o.seed
    judge_records, n_calls = _judge_all(the_judge, rules, judge, items, debias, cache_dir, say, console)
    for sc, recs in judge_records.items():
        rows.setdefault(sc, {}).update(aggregate(recs, bootstrap, seed, sc))
    n_bad = sum(r["failed"] for recs in judge_records.values() for r in recs)
    say(f"judge {judge}: {n_calls} new judgments; {n_bad} items failed (left out of every average)")
    judge_info = {"spec": judge, "identity": the_judge.identity, "prompt_version": rules.version,
                  "rules": str(judge_rules) if judge_rules else None, "debias": debias,
                  "orders": list(ORDERS if debias else ORDERS[:1]),
                  "retries": 0 if the_judge.deterministic else JUDGE_RETRIES,
                  "failed": n_bad, **_describe(the_judge)}
    # Released shifted sets carry neither (joined only with shift --source-benchmark): say so.
    bare = sum(1 for its in items.values() for it in its if not it.get("context"))
    no_category = sum(1 for its in items.values() for it in its if not it.get("category"))
    if bare or no_category:
        judge_info.update(without_context=bare, without_category=no_category)
        say(f"judge {judge}: {bare} items have no context (captions, boxes) and {no_category} no category: "
            "the judge saw an empty [Context] and the generic rule for them (a run from released sets: "
            "rebuild it with `emidbench shift ... --source-benchmark B`)")
    return judge_records, judge_info


def _write_outputs(rd: RunDir, manifest, model, items, counts, rows, per_model_fits, ensemble, judge_records,
                   choice_readings) -> Path:
    """Every output but score.json, at the end, each atomically; returns metrics.csv's path."""
    from emidbench.common.io import write_csv
    from emidbench.score.estimator import save_ensemble

    table = []
    for s in manifest.scenarios:
        row = {**rows.get(s.name, {}), "scenario": s.name, "n": len(items[s.name]), **counts[s.name]}
        table.append(row)
    out_dir = rd.scores_dir(model)
    for stale in sorted(out_dir.glob("club*.pt")):  # a per-model fit of an earlier score: not this one's
        stale.unlink()
    if per_model_fits is not None:
        save_ensemble(per_model_fits, out_dir, ensemble)
    for sc, recs in judge_records.items():
        atomic_write_jsonl(out_dir / "judge" / f"{sc}.jsonl", recs)
    for stale in sorted((out_dir / "choices").glob("*.jsonl")):  # an earlier score's, not this one's
        if stale.stem not in choice_readings:
            stale.unlink()
    for sc, recs in choice_readings.items():
        atomic_write_jsonl(out_dir / "choices" / f"{sc}.jsonl", recs)
    _write_choice_summary(out_dir / "choices.json", choice_readings)
    path = rd.metrics_path(model)
    write_csv(path, table, METRIC_COLUMNS)
    return path


def _choice_scores(items: dict, rows: dict, bootstrap: int, seed: int, model: str, say) -> dict:
    """Accuracy, its interval, macro-F1, n_unparsed and chance of each choice scenario
    into `rows`; -> each scenario's per-item readings (score/choices.py)."""
    from emidbench.score.choices import choice_metrics

    readings = {}
    for sc, its in items.items():
        cells, recs = choice_metrics(its, bootstrap, seed, sc)
        if cells:
            rows.setdefault(sc, {}).update(cells)
            readings[sc] = recs
    if readings:
        n = sum(map(len, readings.values()))
        how = _parsed_by(readings)
        say(f"score {model}: {len(readings)} choice scenarios, {n} answers read as options (answer line "
            f"{how['answer_line']}, exact name {how['exact']}, letter {how['letter']}, fuzzy {how['fuzzy']}); "
            f"{how['unparsed']} matched no option (scored wrong; n_unparsed in metrics.csv, each reading in "
            "choices/<scenario>.jsonl)")
    return readings


def _parsed_by(readings: dict) -> dict:
    from emidbench.benchmarks.choices import HOW

    return {h: sum(r["how"] == h for rs in readings.values() for r in rs) for h in HOW}


def _write_choice_summary(path: Path, readings: dict) -> None:
    """choices.json: per choice scenario, how its answers were read and its accuracy per
    class and per domain; removed when the run has no choice scenario."""
    from emidbench.common.io import atomic_write_json
    from emidbench.score.choices import breakdown

    if not readings:
        path.unlink(missing_ok=True)
        return
    atomic_write_json(path, {sc: breakdown(recs) for sc, recs in readings.items()})


def fit_shared_estimator(run: Path, models: list[str], options: ScoreOptions | None = None, console=None,
                         **kwargs) -> dict:
    """Fit the run's shared estimator on these models' answers (what `emidbench run` does
    once every model is evaluated); returns its record (RUN/scores/_estimator/estimator.json)."""
    from emidbench.embedders import make_embedder
    from emidbench.score import estimator as est

    options = ScoreOptions.of(options, kwargs, "fit_shared_estimator")
    options.check()
    say = (lambda m: console.print(m, highlight=False, soft_wrap=True)) if console else (lambda m: None)
    rd = RunDir(run)
    manifest = rd.read_manifest()
    emb = make_embedder(options.embedder, options.embedder_options())
    cache = _embedding_cache(rd, emb)
    per_model = {}
    for m in models:
        its = _aligned_items(rd, manifest, m)[0]
        per_model[m] = (its, _embed(rd, manifest, its, cache, say, console))
    say(f"estimator: fitting the run's shared estimator on the answers of {', '.join(sorted(per_model))}")
    rec = est.fit_shared(rd.root / "scores", per_model, emb.identity, options.seed, options.estimator_ensemble, say,
                         console)
    return rec


# --------------------------------------------------------------------------- items

GENERATION_KEYS = ("max_new_tokens", "temperature", "system_prompt")


def _generation(rec: dict) -> str:
    """An answer's generation settings as recorded by `emidbench eval` ("" if none: imported)."""
    meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
    return ", ".join(f"{k}={meta[k]!r}" for k in GENERATION_KEYS if k in meta)


def _aligned_items(rd: RunDir, manifest, model: str) -> tuple[dict[str, list[dict]], dict[str, dict], dict]:
    """Per scenario, its questions that have a usable answer (question order, each with
    `answer`), and the counts of those left out; and {generation settings: scenarios}."""
    items, counts, generation = {}, {}, {}
    for s in manifest.scenarios:
        questions = rd.read_scenario(s.name)
        records, failed = read_answers(rd.responses_path(model, s.name))
        answers = {qid: rec["text"] for qid, rec in records.items()}
        for rec in records.values():
            scenarios = generation.setdefault(_generation(rec), [])
            if not scenarios or scenarios[-1] != s.name:
                scenarios.append(s.name)
        its = []
        n_failed = 0
        for q in questions:
            qid = str(q["question_id"])
            if qid in answers:
                if not isinstance(q.get("reference"), str):
                    raise UserError(f"{rd.scenario_path(s.name)}: question {q['question_id']!r} has no reference "
                                    "answer; EMI compares the model's answer with it")
                its.append({**q, "answer": answers[qid]})
            elif qid in failed:
                n_failed += 1
        items[s.name] = its
        counts[s.name] = {"n_missing": len(questions) - len(its) - n_failed, "n_failed": n_failed}
    if len(generation) > 1:
        generation.pop("", None)  # imported answers record no settings: not a second setting
    return items, counts, generation


def _embed(rd: RunDir, manifest, items: dict, cache, say, console=None) -> dict:
    """Each distinct image and text embedded once (the cache), then each scenario's rows
    gathered by index (metrics.IndexedSet over the cache's matrix): an input shared by
    many scenarios is held once, and an image's bytes are read when it is hashed and
    again only if it is embedded, never all held at once."""
    from emidbench.common.progress import progress_bar
    from emidbench.embedders.cache import image_key, text_key
    from emidbench.score.metrics import IndexedSet

    where: dict[str, tuple[str, object]] = {}  # image name -> (scenario, question_id) of its first use
    texts: dict[str, None] = {}
    for sc, its in items.items():
        for it in its:
            where.setdefault(it["image"], (sc, it["question_id"]))
            for t in (it["text"], it["answer"], it["reference"]):
                texts.setdefault(t)
    names = list(where)

    def image_bytes(name: str) -> bytes:
        try:
            return rd.image_path(name).read_bytes()
        except OSError:
            sc, qid = where[name]
            raise UserError(f"{rd.scenario_path(sc)}: question {qid!r}: image {name} is missing from "
                            f"{rd.images}") from None

    image_keys = [image_key(image_bytes(n)) for n in names]
    text_list = list(texts)
    text_keys = [text_key(t) for t in text_list]
    n_img, n_txt = cache.missing(image_keys), cache.missing(text_keys)
    if n_img or n_txt:
        say(f"  embedding {n_img} images and {n_txt} texts not in the cache")
    for what, keys, load, embed, n in (
            ("images", image_keys, lambda i: image_bytes(names[i]), cache.embedder.embed_images, n_img),
            ("texts", text_keys, text_list.__getitem__, cache.embedder.embed_texts, n_txt)):
        with progress_bar(console, n, f"embedding {what}", what) as bar:
            cache.embed_missing(keys, load, embed, what, advance=bar.advance)
    table = cache.matrix
    image_row = dict(zip(names, cache.rows_of(image_keys)))
    text_row = dict(zip(text_list, cache.rows_of(text_keys)))
    sets = {}
    for s in manifest.scenarios:
        its = items[s.name]
        if its:
            sets[s.name] = IndexedSet(
                table,
                v=np.array([image_row[it["image"]] for it in its], dtype=np.int64),
                t=np.array([text_row[it["text"]] for it in its], dtype=np.int64),
                y_hat=np.array([text_row[it["answer"]] for it in its], dtype=np.int64),
                y=np.array([text_row[it["reference"]] for it in its], dtype=np.int64),
            )
    return sets


def _distinct_inputs(sets: dict) -> dict:
    """How many distinct rows the scenarios' sets point at (images, texts), and how many
    (scenario, item, role) uses those rows serve: the memory held is the former."""
    images = set().union(*(s.rows["x_v"].tolist() for s in sets.values())) if sets else set()
    texts = set().union(*(np.concatenate([s.rows[k] for k in ("x_t", "y_hat", "y")]).tolist()
                          for s in sets.values())) if sets else set()
    return {"images": len(images), "texts": len(texts), "uses": 4 * sum(len(s) for s in sets.values())}


# --------------------------------------------------------------------------- estimators

def _load_estimator(estimator: str):
    from emidbench.score.club import load_club

    path = Path(estimator).expanduser()
    if not path.is_file():
        raise UserError(f"--estimator {estimator}: no such file (give shared, refit, fit-per-model or the path of a CLUB checkpoint)")
    return load_club(path)


def _fit_estimator(sets: dict, seed: int, ensemble: int, say, what: str, console=None):
    """--estimator fit-per-model: CLUB fitted on this model's pairs (x, reference) and
    (x, model answer) of all scenarios."""
    from emidbench.score.estimator import fit_ensemble

    x = np.concatenate([s.x for s in sets.values()])
    pairs_x = np.concatenate([x, x])
    pairs_y = np.concatenate([np.concatenate([s.y for s in sets.values()]),
                              np.concatenate([s.y_hat for s in sets.values()])])
    clubs, fits = fit_ensemble(pairs_x, pairs_y, seed, ensemble, say, what, console)
    est = {"kind": "fit-per-model", "path": "club.pt", "seed": seed, "ensemble": ensemble,
           "n_pairs": int(len(pairs_x)), "val_loglik": fits[0]["val_loglik"], "fits": fits}
    return clubs, est


def _shared_estimator(rd: RunDir, manifest, model: str, items: dict, sets: dict, cache, embedder_identity: str,
                      mode: str, seed: int, ensemble: int, say, console=None):
    """The run's shared estimator(s): reused as recorded (`shared`), fitted when there is
    none yet or when asked (`refit`) on every model with answers in RUN."""
    from emidbench.score import estimator as est

    root = rd.root / "scores"
    d = est.shared_dir(root)
    rec = est.read_record(root) if mode == "shared" else None
    if rec is not None:
        why = est.settings_mismatch(rec, embedder_identity, seed, ensemble)
        if why:
            raise UserError(f"{d}: the run's shared estimator was fitted with {why}; score with its settings, or "
                            "pass --estimator refit to fit it again (and rescore the models scored with it)")
    if rec is None:
        per_model = {}
        for m in rd.models():
            if m == model:
                per_model[m] = (items, sets)
            else:  # its answers are part of the fit: the estimator serves every model of the run
                its = _aligned_items(rd, manifest, m)[0]
                per_model[m] = (its, _embed(rd, manifest, its, cache, say, console))
        say(f"score {model}: fitting the run's shared estimator on the answers of {', '.join(sorted(per_model))}")
        rec = est.fit_shared(root, per_model, embedder_identity, seed, ensemble, say, console)
        stale = [m for m in est.stale_scores(root, rec["sha256"]) if m != model]
        if stale:
            say(f"warning: {', '.join(stale)} were scored with the previous shared estimator; rescore them "
                f"(`emidbench score {rd.root} --model NAME`) before comparing models")
    paths = [d / name for name in est.club_files(ensemble)]
    if any(not p.is_file() for p in paths) or est.file_digest(paths) != rec["sha256"]:
        raise UserError(f"{d}: the estimator files do not match estimator.json (changed or removed); pass "
                        "--estimator refit to fit the shared estimator again")
    clubs = est.load_ensemble(d, ensemble)
    x = np.concatenate([s.x for s in sets.values()])
    mine = est.pairs_digest(x, np.concatenate([s.y_hat for s in sets.values()]))
    fitted = rec["per_model"].get(model, {}).get("pairs_sha256")
    this_model = ("in the fit" if fitted == mine else
                  "not in the fit" if fitted is None else "answers changed since the fit")
    if this_model != "in the fit":  # reused all the same: that is what makes models comparable
        say(f"score {model}: the shared estimator was fitted on {', '.join(rec['models'])}; this model's answers "
            f"are {this_model} (reused as it is; --estimator refit fits it on every model's answers now)")
    info = {"kind": "shared", "path": f"../{est.SHARED_DIR}/club.pt", "sha256": rec["sha256"], "seed": seed,
            "ensemble": ensemble, "fitted_on": rec["models"], "this_model": this_model, "n_pairs": rec["n_pairs"],
            "val_loglik": rec["fits"][0]["val_loglik"]}
    return clubs, info


def _score(id_name: str, sets: dict, clubs, entropy_scaler, bootstrap: int, seed: int, spread, steps=None,
           console=None) -> list[dict]:
    from emidbench.common.progress import progress_bar
    from emidbench.score.metrics import score_scenarios

    label = f"EMI, EMID, bound{' and bootstrap' if bootstrap else ''}"
    with progress_bar(console, len(sets), label, "scenarios") as bar:
        return score_scenarios(id_name, sets, clubs, entropy_scaler=entropy_scaler, bootstrap=bootstrap, seed=seed,
                               spread=spread, steps=steps, advance=bar.advance)


# --------------------------------------------------------------------------- judge

def _judge_all(judge, rules, spec: str, items: dict, debias: bool, cache_dir: Path, say,
               console=None) -> tuple[dict, int]:
    """Judge every item of every scenario (both orders with debias); returns the judge
    records per scenario and the number of judge calls made. Three steps: the prompts
    (one ask per distinct prompt), the replies (cache, then the judge, with retries),
    the records."""
    orders = ORDERS if debias else ORDERS[:1]
    prompts, plan = _judge_prompts(judge, rules, items, orders)
    replies, last_failure, calls = _judge_replies(judge, prompts, cache_dir, say, console)
    return _judge_records(items, plan, orders, replies, last_failure, spec, rules), calls


def _judge_prompts(judge, rules, items: dict, orders) -> tuple[dict, dict]:
    """{cache key: prompt} (each distinct prompt once) and per scenario, per item, the key
    of each order."""
    from emidbench.score.judges.protocol import build_prompt

    prompts: dict[str, object] = {}  # cache key -> prompt (one ask per distinct prompt)
    plan: dict[str, list[list[str]]] = {}  # scenario -> per item, the key of each order
    for sc, its in items.items():
        plan[sc] = []
        for it in its:
            keys = []
            for order in orders:
                ref_first = order == ORDERS[0]
                a1, a2 = (it["reference"], it["answer"]) if ref_first else (it["answer"], it["reference"])
                p = build_prompt(rules, it.get("context"), it["text"], a1, a2, it.get("category"),
                                 reference_slot=1 if ref_first else 2)
                key = hashlib.sha256(json.dumps([judge.identity, p.system, p.content],
                                                ensure_ascii=False).encode("utf-8")).hexdigest()
                prompts.setdefault(key, p)
                keys.append(key)
            plan[sc].append(keys)
    return prompts, plan


def _judge_replies(judge, prompts: dict, cache_dir: Path, say, console=None) -> tuple[dict, dict, int]:
    """The parsable reply to each prompt (from the cache, else asked, with retries for a
    non-deterministic judge): (replies, the last failure of each prompt without one,
    the number of calls made)."""
    from emidbench.common.cache import EntryCache
    from emidbench.common.progress import progress_bar
    from emidbench.score.judges.protocol import parse_scores

    # A damaged or unparsable entry is a miss: judged again below and overwritten.
    cache = EntryCache(cache_dir, valid=lambda entry: parse_scores(entry.get("reply")) is not None)
    replies: dict[str, str] = {}
    last_failure: dict[str, str] = {}
    for key in prompts:
        hit = cache.get(key)
        if hit is not None:
            replies[key] = hit["reply"]
    todo = [k for k in prompts if k not in replies]
    if todo:
        say(f"  judging {len(todo)} prompts ({len(prompts) - len(todo)} from the cache)")
    calls = 0
    # A deterministic judge (greedy, offline) would only repeat itself.
    for attempt in range(1 if judge.deterministic else 1 + JUDGE_RETRIES):
        if not todo:
            break
        label = "judging" if attempt == 0 else f"judging again (retry {attempt})"
        with progress_bar(console, len(todo), label, "prompts") as bar:
            for i, reply in judge.judge([prompts[k] for k in todo]):
                key = todo[i]
                calls += 1
                bar.advance(1)
                if isinstance(reply, str) and parse_scores(reply) is not None:
                    replies[key] = reply
                    cache.put(key, {"reply": reply, "judge": judge.identity})
                else:
                    last_failure[key] = reply if isinstance(reply, str) else f"error: {reply}"
        todo = [k for k in todo if k not in replies]
    return replies, last_failure, calls


def _judge_records(items: dict, plan: dict, orders, replies: dict, last_failure: dict, spec: str, rules) -> dict:
    """Per scenario, one record per item: the raw replies, the scores of each order (as
    [reference, model]) and their mean, failed when any order has no parsable reply."""
    from emidbench.score.judges.protocol import parse_scores

    records: dict[str, list[dict]] = {}
    for sc, its in items.items():
        recs = []
        for it, keys in zip(its, plan[sc]):
            raw, by_order = [], []
            for order, key in zip(orders, keys):
                text = replies.get(key, last_failure.get(key, ""))
                raw.append(text)
                parsed = parse_scores(replies[key]) if key in replies else None
                if parsed is not None and order != ORDERS[0]:
                    parsed = (parsed[1], parsed[0])  # back to [reference, model]
                by_order.append(list(parsed) if parsed is not None else None)
            ok = all(s is not None for s in by_order)
            rec = {"question_id": it["question_id"], "category": it.get("category"), "judge": spec,
                   "prompt_version": rules.version, "orders": list(orders), "raw": raw,
                   "scores_by_order": by_order, "failed": not ok,
                   "scores": ([float(np.mean([s[0] for s in by_order])), float(np.mean([s[1] for s in by_order]))]
                              if ok else None)}
            recs.append(rec)
        if recs:
            records[sc] = recs
    return records


def _describe(obj) -> dict:
    d = obj.describe()
    return {k: v for k, v in d.items() if "key" not in k or k == "api_key_env"}
