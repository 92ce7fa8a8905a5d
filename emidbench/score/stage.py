"""`emidbench score`: RUN/shifts + RUN/responses/<model> -> RUN/scores/<model>/.

    metrics.csv          one row per scenario (manifest order): EMI, EMID, the bound and
                         its terms, judge scores, with CIs when --bootstrap is given
    judge/<scenario>.jsonl  one judge record per item (scores, raw reply, judge, prompt version)
    club.pt              the CLUB estimator fitted on this run (--estimator fit)
    score.json           what was run: embedder, estimator, judge, counts

Items are aligned by question_id; a question without an answer (or whose generation
failed) is left out of that scenario and counted, never misaligned. Embeddings and judge
replies are cached by content under RUN/cache/, so a rerun embeds and calls nothing new.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from emidbench.errors import UserError
from emidbench.rundir import RunDir, atomic_write_json, atomic_write_jsonl, iter_jsonl, read_json
from emidbench.score.table import write_csv

METRIC_COLUMNS = ["scenario", "n", "n_missing", "n_failed", "emi", "emi_lo", "emi_hi", "emid", "emid_lo", "emid_hi",
                  "emid_ub", "emid_true_ub", "jsd_v", "jsd_t", "jsd_y_id", "jsd_y_ood", "rp_score", "rp_lo", "rp_hi",
                  "rp_conv", "rp_detail", "rp_complex", "win_rate", "win_lo", "win_hi", "judge_n", "judge_failed"]
JUDGE_RETRIES = 2


def run_score(run: Path, model: str, embedder: str = "offline", vision_encoder: str | None = None,
              text_encoder: str | None = None, estimator: str = "fit", judge: str | None = None,
              debias: bool = False, id_scenario: str | None = None, entropy_scaler: float | None = None,
              bootstrap: int = 0, seed: int = 0, judge_base_url: str | None = None,
              judge_api_key_env: str = "OPENAI_API_KEY", judge_rules: str | None = None, concurrency: int = 4,
              console=None) -> Path:
    from emidbench.score.club import fit_club, load_club, save_club
    from emidbench.score.embedders import EMBEDDERS
    from emidbench.score.embedders.cache import EmbeddingCache
    from emidbench.score.metrics import EmbeddingSet, score_scenarios

    rd = RunDir(run)
    manifest = rd.read_manifest()
    say = (lambda m: console.print(m, highlight=False, soft_wrap=True)) if console else (lambda m: None)
    id_name = id_scenario or manifest.id_scenario
    manifest.get(id_name)  # exists, or one clear error listing the names
    if not rd.responses_dir(model).is_dir():
        have = ", ".join(rd.models()) or "none"
        raise UserError(f"no answers for model {model!r} in {rd.root} (have: {have}); run `emidbench eval` first")

    items, counts = _aligned_items(rd, manifest, model)
    if not items[id_name]:
        raise UserError(f"no answered questions in the ID scenario {id_name} for model {model}")
    missing = sum(c["n_missing"] for c in counts.values())
    failed = sum(c["n_failed"] for c in counts.values())
    if missing or failed:
        say(f"score {model}: {missing} questions without an answer and {failed} failed generations left out")

    emb = EMBEDDERS.get(embedder)(vision_encoder=vision_encoder, text_encoder=text_encoder)
    cache = EmbeddingCache(rd.cache / "embeddings", emb)
    image_bytes: dict[str, bytes] = {}
    sets = {}
    for sc in (s.name for s in manifest.scenarios):
        its = items[sc]
        if not its:
            continue
        for it in its:
            if it["image"] not in image_bytes:
                image_bytes[it["image"]] = rd.image_path(it["image"]).read_bytes()
        sets[sc] = EmbeddingSet(
            x_v=cache.images([image_bytes[it["image"]] for it in its]),
            x_t=cache.texts([it["text"] for it in its]),
            y_hat=cache.texts([it["answer"] for it in its]),
            y=cache.texts([it["reference"] for it in its]),
        )
    out_dir = rd.scores_dir(model)
    est_info: dict = {"estimator": estimator}
    if estimator == "fit":
        x = np.concatenate([s.x for s in sets.values()] * 2)
        y = np.concatenate([s.y for s in sets.values()] + [s.y_hat for s in sets.values()])
        club, info = fit_club(x, y, seed=seed)
        save_club(club, out_dir / "club.pt")
        est_info.update(val_loglik=info["val_loglik"], epochs=info["epochs"], n_pairs=int(len(x)), path="club.pt")
    else:
        club = load_club(Path(estimator))
        if club.x_dim != emb.dim:
            raise UserError(f"estimator {estimator} expects {club.x_dim}-d embeddings; embedder {embedder} gives "
                            f"{emb.dim}-d (the published CLUB_global.pt needs --embedder paper)")
    rows = {r["scenario"]: r for r in score_scenarios(id_name, sets, club, entropy_scaler, bootstrap, seed)}

    judge_info = None
    if judge:
        from emidbench.score.judges import make_judge
        from emidbench.score.judges.protocol import Rules, aggregate

        j = make_judge(judge, base_url=judge_base_url, api_key_env=judge_api_key_env, concurrency=concurrency)
        rules = Rules(Path(judge_rules) if judge_rules else None)
        jcache = rd.cache / "judge"
        calls = 0
        for sc, its in items.items():
            recs, n_calls = _judge_scenario(j, rules, its, debias, jcache, judge)
            calls += n_calls
            atomic_write_jsonl(out_dir / "judge" / f"{sc}.jsonl", recs)
            if sc in rows:
                rows[sc].update(aggregate(recs, bootstrap, seed, sc))
        judge_info = {"judge": judge, "identity": j.identity, "prompt_version": rules.version, "debias": debias,
                      "calls": calls}
        say(f"judge {judge}: {calls} new judgments")

    table = []
    for s in manifest.scenarios:
        row = {"scenario": s.name, **counts[s.name], **rows.get(s.name, {})}
        row["n"] = len(items[s.name])
        table.append(row)
    path = out_dir / "metrics.csv"
    write_csv(path, table, METRIC_COLUMNS)
    atomic_write_json(out_dir / "score.json", {
        "model": model, "id_scenario": id_name, "embedder": embedder, "embedder_identity": emb.identity,
        "estimator": est_info, "judge": judge_info, "bootstrap": bootstrap, "seed": seed,
        "entropy_scaler": entropy_scaler, "missing": missing, "failed": failed,
    })
    say(f"score {model}: {len(sets)} scenarios scored, {cache.computed} new embeddings")
    return path


def _aligned_items(rd: RunDir, manifest, model: str) -> tuple[dict, dict]:
    items, counts = {}, {}
    for s in manifest.scenarios:
        questions = rd.read_scenario(s.name)
        path = rd.responses_path(model, s.name)
        answers, failed = {}, set()
        if path.is_file():
            for _, r in iter_jsonl(path, allow_torn_tail=True):
                if (r.get("metadata") or {}).get("error"):
                    failed.add(r["question_id"])
                else:
                    answers[r["question_id"]] = str(r.get("text", ""))
                    failed.discard(r["question_id"])
        its = [{**q, "answer": answers[q["question_id"]]} for q in questions if q["question_id"] in answers]
        items[s.name] = its
        n_failed = sum(1 for q in questions if q["question_id"] in failed)
        counts[s.name] = {"n_missing": len(questions) - len(its) - n_failed, "n_failed": n_failed}
    return items, counts


def _judge_scenario(j, rules, its: list[dict], debias: bool, jcache: Path, spec: str) -> tuple[list[dict], int]:
    from emidbench.score.judges.protocol import build_prompt, parse_scores

    orders = [False, True] if debias else [False]
    jobs = []  # (item index, swapped, prompt, cache path)
    for i, it in enumerate(its):
        for swapped in orders:
            a1, a2 = (it["answer"], it["reference"]) if swapped else (it["reference"], it["answer"])
            p = build_prompt(rules, it.get("context"), it["text"], a1, a2, it.get("category"))
            key = hashlib.sha256(json.dumps([j.identity, p.system, p.content]).encode()).hexdigest()
            jobs.append((i, swapped, p, jcache / key[:2] / f"{key}.json", a1, a2))
    replies: dict[int, str] = {}
    calls = 0
    todo = []
    for k, job in enumerate(jobs):
        if job[3].is_file():
            replies[k] = read_json(job[3])["reply"]
        else:
            todo.append(k)
    for _ in range(1 + JUDGE_RETRIES):
        if not todo:
            break
        if hasattr(j, "score_pair"):
            got = [j.score_pair(jobs[k][4], jobs[k][5]) for k in todo]
        else:
            got = j.judge([jobs[k][2] for k in todo])
            calls += len(todo)
        retry = []
        for k, reply in zip(todo, got):
            if isinstance(reply, Exception) or parse_scores(reply) is None:
                replies[k] = reply if isinstance(reply, str) else f"error: {reply}"
                retry.append(k)
            else:
                replies[k] = reply
                atomic_write_json(jobs[k][3], {"reply": reply, "judge": spec})
        todo = retry
    records = []
    for i, it in enumerate(its):
        mine = [(k, jobs[k]) for k in range(len(jobs)) if jobs[k][0] == i]
        scores, raws, ok = [], [], True
        for k, job in mine:
            raws.append(replies.get(k, ""))
            parsed = parse_scores(replies.get(k, ""))
            if parsed is None:
                ok = False
                continue
            ref, mod = (parsed[1], parsed[0]) if job[1] else parsed
            scores.append((ref, mod))
        rec = {"question_id": it["question_id"], "category": it.get("category"), "judge": spec,
               "prompt_version": rules.version, "raw": raws, "failed": not ok}
        if ok:
            rec["scores"] = [float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))]
        records.append(rec)
    return records, calls
