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
    checkpoint path (score/estimator.py)."""
    from emidbench.embedders import make_embedder
    from emidbench.embedders.cache import EmbeddingCache

    options = ScoreOptions.of(options, kwargs, "run_score")
    options.check()
    o = options
    embedder, vision_encoder, text_encoder, estimator, judge = \
        o.embedder, o.vision_encoder, o.text_encoder, o.estimator, o.judge
    debias, entropy_scaler, bootstrap, seed = o.debias, o.entropy_scaler, o.bootstrap, o.seed
    judge_rules, estimator_ensemble = o.judge_rules, o.estimator_ensemble
    say = (lambda m: console.print(m, highlight=False, soft_wrap=True)) if console else (lambda m: None)

    rd = RunDir(run)
    manifest = rd.read_manifest()
    id_name = o.id_scenario or manifest.id_scenario
    manifest.get(id_name)  # exists, or one clear line listing the names
    if not model or not rd.responses_dir(model).is_dir() or Path(model).name != model or model == SHARED_DIR:
        have = ", ".join(rd.models()) or "none"
        raise UserError(f"no answers for model {model!r} in {rd.root / 'responses'} (have: {have}); "
                        "run `emidbench eval` first")
    mode = mode_of(estimator)
    club = _load_estimator(estimator) if mode == "path" else None  # a bad path fails before any work

    items, counts, generation = _aligned_items(rd, manifest, model)
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

    the_judge, rules, notes = None, None, []  # notes: options that change nothing, printed and recorded
    judge_only = " and ".join(n for n, v in (("--debias", debias), ("--judge-rules", judge_rules)) if v)
    if judge:  # built before the embedding work, so a bad spec or model fails at once
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

    emb = make_embedder(embedder, o.embedder_options())
    if embedder != "paper" and (vision_encoder or text_encoder):
        say(f"score: --vision-encoder / --text-encoder are for the paper embedder; {embedder} ignores them")
    if club is not None and (club.x_dim, club.y_dim) != (emb.dim, emb.dim):
        raise UserError(f"estimator {estimator} expects {club.x_dim}-d queries and {club.y_dim}-d answers; the "
                        f"{embedder} embedder gives {emb.dim}-d vectors (the published CLUB_global.pt needs "
                        "--embedder paper)")
    cache = EmbeddingCache(rd.cache / "embeddings", emb,
                           progress=lambda what, done, total: say(f"  embedded {done}/{total} {what}"))
    sets = _embed(rd, manifest, items, cache, say)
    say(f"score {model}: {len(sets)} scenarios; {cache.computed} new embeddings "
        f"(embedder {embedder}, {emb.dim}-d)")

    out_dir = rd.scores_dir(model)
    per_model_fits = None
    if mode == "path":
        clubs, est_info = [club], {"kind": "path", "path": str(estimator)}
    elif mode == "fit-per-model":
        clubs, est_info = _fit_estimator(sets, seed, estimator_ensemble, say, f"score {model}")
        per_model_fits = clubs
    else:
        clubs, est_info = _shared_estimator(rd, manifest, model, items, sets, cache, emb.identity, mode, seed,
                                            estimator_ensemble, say)
    spread = {} if len(clubs) > 1 else None
    rows = {r["scenario"]: r for r in _score(id_name, sets, clubs, entropy_scaler, bootstrap, seed, spread)}
    if spread is not None:  # how far the K estimators disagree: the noise a single fit would carry
        sds = [v for sc, v in spread.items() if sc != id_name]
        est_info["emid_sd_across_estimators"] = {
            "median": float(np.median(sds)) if sds else 0.0, "max": float(np.max(sds)) if sds else 0.0,
            "per_scenario": spread}

    choice_readings = _choice_scores(items, rows, bootstrap, seed, model, say)

    judge_records, judge_info = {}, None
    if the_judge is not None:
        from emidbench.score.judges.protocol import aggregate

        judge_records, n_calls = _judge_all(the_judge, rules, judge, items, debias, rd.cache / "judge", say)
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

    table = []
    for s in manifest.scenarios:
        row = {**rows.get(s.name, {}), "scenario": s.name, "n": len(items[s.name]), **counts[s.name]}
        table.append(row)

    # Every output at the end, each atomically.
    from emidbench.common.io import write_csv
    from emidbench.score.estimator import save_ensemble

    for stale in sorted(out_dir.glob("club*.pt")):  # a per-model fit of an earlier score: not this one's
        stale.unlink()
    if per_model_fits is not None:
        save_ensemble(per_model_fits, out_dir, estimator_ensemble)
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
    ScoreRecord(
        model=model,
        id_scenario=id_name,
        embedder={"name": embedder, "identity": emb.identity, **_describe(emb)},
        estimator=est_info,
        judge=judge_info,
        notes=notes,
        settings={"bootstrap": bootstrap, "seed": seed, "entropy_scaler": entropy_scaler,
                  "estimator_ensemble": estimator_ensemble},
        generation=[{"settings": s, "scenarios": scs} for s, scs in generation.items()],
        counts={"scenarios": len(manifest.scenarios), "scored_scenarios": len(sets),
                "items": sum(len(v) for v in items.values()), "missing": missing, "failed": failed,
                **({"choice_items": sum(map(len, choice_readings.values())),
                    "unparsed": sum(r["parsed"] is None for rs in choice_readings.values() for r in rs),
                    "parsed_by": _parsed_by(choice_readings)}
                   if choice_readings else {})},
    ).write(rd.score_record_path(model))
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
    from emidbench.embedders.cache import EmbeddingCache
    from emidbench.score import estimator as est

    options = ScoreOptions.of(options, kwargs, "fit_shared_estimator")
    options.check()
    say = (lambda m: console.print(m, highlight=False, soft_wrap=True)) if console else (lambda m: None)
    rd = RunDir(run)
    manifest = rd.read_manifest()
    emb = make_embedder(options.embedder, options.embedder_options())
    cache = EmbeddingCache(rd.cache / "embeddings", emb,
                           progress=lambda what, done, total: say(f"  embedded {done}/{total} {what}"))
    per_model = {}
    for m in models:
        its = _aligned_items(rd, manifest, m)[0]
        per_model[m] = (its, _embed(rd, manifest, its, cache, say))
    say(f"estimator: fitting the run's shared estimator on the answers of {', '.join(sorted(per_model))}")
    rec = est.fit_shared(rd.root / "scores", per_model, emb.identity, options.seed, options.estimator_ensemble, say)
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


def _embed(rd: RunDir, manifest, items: dict, cache, say) -> dict:
    """Each distinct image and text embedded once (cache), then gathered per scenario."""
    from emidbench.score.metrics import EmbeddingSet

    image_bytes: dict[str, bytes] = {}
    texts: dict[str, None] = {}
    for sc, its in items.items():
        for it in its:
            name = it["image"]
            if name not in image_bytes:
                try:
                    image_bytes[name] = rd.image_path(name).read_bytes()
                except OSError:
                    raise UserError(f"{rd.scenario_path(sc)}: question {it['question_id']!r}: image {name} is "
                                    f"missing from {rd.images}") from None
            for t in (it["text"], it["answer"], it["reference"]):
                texts.setdefault(t)
    n_img, n_txt = cache.missing_images(list(image_bytes.values())), cache.missing_texts(list(texts))
    if n_img or n_txt:
        say(f"  embedding {n_img} images and {n_txt} texts not in the cache")
    cache.images(list(image_bytes.values()))
    cache.texts(list(texts))
    sets = {}
    for s in manifest.scenarios:
        its = items[s.name]
        if its:
            sets[s.name] = EmbeddingSet(
                x_v=cache.images([image_bytes[it["image"]] for it in its]),
                x_t=cache.texts([it["text"] for it in its]),
                y_hat=cache.texts([it["answer"] for it in its]),
                y=cache.texts([it["reference"] for it in its]),
            )
    return sets


# --------------------------------------------------------------------------- estimators

def _load_estimator(estimator: str):
    from emidbench.score.club import load_club

    path = Path(estimator).expanduser()
    if not path.is_file():
        raise UserError(f"--estimator {estimator}: no such file (give shared, refit, fit-per-model or the path of a CLUB checkpoint)")
    return load_club(path)


def _fit_estimator(sets: dict, seed: int, ensemble: int, say, what: str):
    """--estimator fit-per-model: CLUB fitted on this model's pairs (x, reference) and
    (x, model answer) of all scenarios."""
    from emidbench.score.estimator import fit_ensemble

    x = np.concatenate([s.x for s in sets.values()])
    pairs_x = np.concatenate([x, x])
    pairs_y = np.concatenate([np.concatenate([s.y for s in sets.values()]),
                              np.concatenate([s.y_hat for s in sets.values()])])
    clubs, fits = fit_ensemble(pairs_x, pairs_y, seed, ensemble, say, what)
    est = {"kind": "fit-per-model", "path": "club.pt", "seed": seed, "ensemble": ensemble,
           "n_pairs": int(len(pairs_x)), "val_loglik": fits[0]["val_loglik"], "fits": fits}
    return clubs, est


def _shared_estimator(rd: RunDir, manifest, model: str, items: dict, sets: dict, cache, embedder_identity: str,
                      mode: str, seed: int, ensemble: int, say):
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
                per_model[m] = (its, _embed(rd, manifest, its, cache, say))
        say(f"score {model}: fitting the run's shared estimator on the answers of {', '.join(sorted(per_model))}")
        rec = est.fit_shared(root, per_model, embedder_identity, seed, ensemble, say)
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


def _score(id_name: str, sets: dict, clubs, entropy_scaler, bootstrap: int, seed: int, spread) -> list[dict]:
    from emidbench.score.metrics import score_scenarios

    return score_scenarios(id_name, sets, clubs, entropy_scaler=entropy_scaler, bootstrap=bootstrap, seed=seed,
                           spread=spread)


# --------------------------------------------------------------------------- judge

def _judge_all(judge, rules, spec: str, items: dict, debias: bool, cache_dir: Path, say) -> tuple[dict, int]:
    """Judge every item of every scenario (both orders with debias); returns the judge
    records per scenario and the number of judge calls made."""
    from emidbench.common.cache import EntryCache
    from emidbench.score.judges.protocol import build_prompt, parse_scores

    orders = ORDERS if debias else ORDERS[:1]
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
    for _ in range(1 if judge.deterministic else 1 + JUDGE_RETRIES):
        if not todo:
            break
        step = max(1, len(todo) // 10)
        for done, (i, reply) in enumerate(judge.judge([prompts[k] for k in todo]), start=1):
            key = todo[i]
            calls += 1
            if done % step == 0 and len(todo) >= 50:
                say(f"  judged {done}/{len(todo)}")
            if isinstance(reply, str) and parse_scores(reply) is not None:
                replies[key] = reply
                cache.put(key, {"reply": reply, "judge": judge.identity})
            else:
                last_failure[key] = reply if isinstance(reply, str) else f"error: {reply}"
        todo = [k for k in todo if k not in replies]

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
    return records, calls


def _describe(obj) -> dict:
    d = obj.describe()
    return {k: v for k, v in d.items() if "key" not in k or k == "api_key_env"}
