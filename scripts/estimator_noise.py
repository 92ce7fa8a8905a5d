"""How much of EMID is CLUB-estimator noise, before and after the shared estimator and
the ensemble (issue 19). Prints the figures; changes nothing in the run.

    python scripts/estimator_noise.py --run RUN [--model M] [--ensemble 5] [--bootstrap 100]

RUN: a run with shifts and one model's answers (e.g. the demo's runs/offline-default;
without --run, a small one is made first: the demo config with --limit, in a temporary
folder). The embedder is the one the run's score.json records (else the demo's).

The experiment of the issue, on this run:
  drop   remove 2 answers of one scenario, refit, and see how far the OTHER scenarios'
         EMID move (they did not change at all);
  seed   refit with seed + 1.
Each is measured with one estimator (what `--estimator fit-per-model` did per model) and
with an ensemble of K (EMI = the mean of K fits). With the shared estimator, scoring a
model whose answers changed does not refit at all, so the other scenarios do not move
(reported as such); the comparison between two models is then free of this noise. Last,
the median 95% interval half-width of EMID with --bootstrap B resamples, with one
estimator and with the K pooled, beside the seed change it should cover.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emidbench.common.io import read_json
from emidbench.rundir import RunDir


def build_run(limit: int) -> Path:
    from emidbench.pipeline import config_dir, load_run_config, run_pipeline

    out = Path(tempfile.mkdtemp(prefix="emid-noise-")) / "run"
    cfg = load_run_config(config_dir() / "offline-default.yaml", {"out": str(out), "limit": limit})
    cfg["score"] = {**cfg["score"], "bootstrap": 0, "judge": None}
    print(f"building a run with --limit {limit} in {out} (shift, eval, score) ...", flush=True)
    run_pipeline(cfg)
    return out


def embedder_options(rd: RunDir, model: str) -> dict:
    info_path = rd.scores_dir(model) / "score.json"
    emb = (read_json(info_path).get("embedder") or {}) if info_path.is_file() else {}
    if emb.get("name"):
        return {"embedder": emb["name"], "vision_encoder": emb.get("vision_encoder"),
                "text_encoder": emb.get("text_encoder")}
    return {"embedder": "paper", "vision_encoder": "mini-clip", "text_encoder": "mini-xlmr"}


def load_sets(rd: RunDir, model: str, opts: dict):
    from emidbench.embedders import make_embedder
    from emidbench.embedders.cache import EmbeddingCache
    from emidbench.score.stage import _aligned_items, _embed

    manifest = rd.read_manifest()
    items = _aligned_items(rd, manifest, model)[0]
    emb = make_embedder(opts["embedder"], vision_encoder=opts.get("vision_encoder"),
                        text_encoder=opts.get("text_encoder"))
    sets = _embed(rd, manifest, items, EmbeddingCache(rd.cache / "embeddings", emb), lambda m: None)
    return manifest.id_scenario, sets


def pairs(sets: dict):
    x = np.concatenate([s.x for s in sets.values()])
    return (np.concatenate([x, x]), np.concatenate([np.concatenate([s.y for s in sets.values()]),
                                                    np.concatenate([s.y_hat for s in sets.values()])]))


def fit(sets: dict, seed: int, k: int):
    from emidbench.score.estimator import fit_ensemble

    px, py = pairs(sets)
    return fit_ensemble(px, py, seed, k, lambda m: None, "")[0]


def emids(id_name: str, sets: dict, clubs, bootstrap: int = 0, seed: int = 0) -> dict:
    from emidbench.score.metrics import score_scenarios

    return {r["scenario"]: r for r in score_scenarios(id_name, sets, clubs, bootstrap=bootstrap, seed=seed)}


def change(a: dict, b: dict, skip: set) -> tuple[float, float, float, str]:
    """median |dEMID|, median relative change, max |dEMID| and where, over scenarios not in skip."""
    names = [n for n in a if n not in skip]
    d = np.array([abs(a[n]["emid"] - b[n]["emid"]) for n in names])
    rel = np.array([abs(a[n]["emid"] - b[n]["emid"]) / max(abs(a[n]["emid"]), 1e-12) for n in names])
    i = int(np.argmax(d))
    return float(np.median(d)), float(np.median(rel)), float(d[i]), names[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, help="a run with shifts and answers (default: build a small one)")
    ap.add_argument("--limit", type=int, default=12, help="without --run: questions per domain of the run built")
    ap.add_argument("--model", help="default: the run's first model")
    ap.add_argument("--drop-scenario", help="scenario losing 2 answers (default: the last one)")
    ap.add_argument("--ensemble", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    run = args.run or build_run(args.limit)
    rd = RunDir(run)
    model = args.model or rd.models()[0]
    opts = embedder_options(rd, model)
    id_name, sets = load_sets(rd, model, opts)
    drop = args.drop_scenario or list(sets)[-1]
    dropped = {**sets, drop: sets[drop].take(np.arange(2, len(sets[drop])))}
    n_pairs = 2 * sum(len(s) for s in sets.values())
    print(f"run {run}, model {model}, embedder {opts['embedder']}; {len(sets)} scenarios, {n_pairs} pairs; "
          f"drop 2 answers of {drop}", flush=True)
    skip = {id_name, drop}

    results = {}
    for k in (1, args.ensemble):
        base = fit(sets, args.seed, k)
        ref = emids(id_name, sets, base)
        refit_drop = emids(id_name, sets, fit(dropped, args.seed, k))  # other scenarios' data unchanged
        refit_seed = emids(id_name, sets, fit(sets, args.seed + 1, k))
        results[k] = {"drop": change(ref, refit_drop, skip), "seed": change(ref, refit_seed, {id_name}),
                      "base": base, "ref": ref, "seed_rows": refit_seed}
        label = "one estimator" if k == 1 else f"ensemble of {k}"
        for what in ("drop", "seed"):
            med, rel, mx, where = results[k][what]
            print(f"  {label:<15} {what:<4}: median |dEMID| {med:.4f} ({100 * rel:.1f}%), max {mx:.4f} ({where})",
                  flush=True)
    print("  shared estimator, drop: 0 (not refitted: the other scenarios' EMID are unchanged by construction)")

    if args.bootstrap:
        for k in (1, args.ensemble):
            rows = emids(id_name, sets, results[k]["base"], bootstrap=args.bootstrap, seed=args.seed)
            half = [(r["emid_hi"] - r["emid_lo"]) / 2 for n, r in rows.items() if n != id_name]
            moved = [abs(results[k]["ref"][n]["emid"] - results[k]["seed_rows"][n]["emid"])
                     for n in rows if n != id_name]
            lo_hi = [(r["emid_lo"], r["emid_hi"]) for n, r in rows.items() if n != id_name]
            other = [results[k]["seed_rows"][n]["emid"] for n in rows if n != id_name]
            covered = np.mean([lo <= e <= hi for (lo, hi), e in zip(lo_hi, other)])
            label = "one estimator" if k == 1 else f"{k} pooled"
            print(f"  bootstrap {args.bootstrap}, {label:<13}: median CI half-width {np.median(half):.4f}; the seed+1 "
                  f"EMID inside the CI for {100 * covered:.0f}% of shifts (median move {np.median(moved):.4f})",
                  flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    print(json.dumps({f"k{k}": {w: list(v[w]) for w in ("drop", "seed")} for k, v in results.items()}))


if __name__ == "__main__":
    main()
