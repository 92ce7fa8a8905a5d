"""`emidbench run`: shift -> eval -> score -> report from one config, resumable.

Each stage resumes on its own (shift skips finished scenarios, eval skips answered
items, score reuses cached embeddings and judgments). On top of that, a stage whose
inputs and options have not changed since it last completed is skipped outright: its
completion is recorded in RUN/pipeline.json with a fingerprint of what it was run with.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, Callable

from emidbench.common.errors import UserError, did_you_mean
from emidbench.common.hashing import fingerprint
from emidbench.common.yamlfile import LineMap, read_yaml
from emidbench.eval.options import EvalOptions
from emidbench.rundir import RunDir, model_slug
from emidbench.rundir.answers import answered
from emidbench.rundir.records import PipelineRecord

# key -> default; sections are dicts of options passed to the stage functions.
TOP_KEYS = {
    "out": None, "benchmark": None, "benchmark_options": {}, "suite": "paper-61", "seed": 0,
    "limit": None, "shift": {}, "models": [], "eval": {}, "score": {}, "report": {},
}
SHIFT_KEYS = {"workers", "translator", "dry_run", "split_embedder", "split_options", "split_index",
              "similarity_filter", "id_domain", "per_class", "icl", "icl_source"}
BENCH_KEYS = {"name", "split", "subset", "columns", "known_as", "domains", "size"}
EVAL_KEYS = EvalOptions.names()  # every eval option, in a config's `eval:` and `models[i]:`
REPORT_KEYS: set[str] = set()  # the report stage has no options yet
SCORE_KEYS = {"embedder", "vision_encoder", "text_encoder", "estimator", "judge", "debias", "id_scenario",
              "entropy_scaler", "bootstrap", "judge_base_url", "judge_api_key_env", "judge_rules", "concurrency",
              "judge_api", "estimator_ensemble"}


def config_dir() -> Path:
    """Ready-made configs: the repository's configs/ or, in a wheel, emidbench/_configs."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "configs", here / "_configs"):
        if cand.is_dir():
            return cand
    return here.parent / "configs"


def load_run_config(path: Path | None, overrides: dict | None = None) -> dict:
    cfg: dict[str, Any] = {}
    where = "command line"
    if path is not None:
        path = Path(path)
        if not path.exists() and (config_dir() / path.name).exists():
            path = config_dir() / path.name
        where = str(path)
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        cfg = read_yaml(path, where) or {}  # with lines: a typo'd key is named at file:line
        if not isinstance(cfg, dict):
            raise UserError(f"{path}: a run config is a YAML mapping")
    for k, v in (overrides or {}).items():
        if v is not None:
            cfg[k] = v
    _check_keys(cfg, TOP_KEYS, where, "")
    cfg = {**{k: (dict(v) if isinstance(v, dict) else v) for k, v in TOP_KEYS.items()}, **cfg}
    for section, keys in (("shift", SHIFT_KEYS), ("eval", EVAL_KEYS), ("score", SCORE_KEYS),
                          ("report", REPORT_KEYS), ("benchmark_options", BENCH_KEYS)):
        if not isinstance(cfg[section] or {}, dict):
            raise UserError(f"{where}: '{section}' must be a mapping")
        cfg[section] = cfg[section] or {}  # `shift:` with nothing under it is an empty section
        _check_keys(cfg[section], keys, where, f"{section}.")
    if isinstance(cfg["models"], str):  # `models: tiny-llava`: one model
        cfg["models"] = [cfg["models"]]
    if not isinstance(cfg["models"] or [], list):
        raise UserError(f"{where}: 'models' must be a list of models")
    models = []
    for i, m in enumerate(cfg["models"] or []):
        m = {"model": m} if isinstance(m, str) else m
        if not isinstance(m, dict) or "model" not in m:
            raise UserError(f"{where}: models[{i}] needs a 'model' (hub id, path or tiny-llava)")
        _check_keys(m, EVAL_KEYS | {"model"}, where, f"models[{i}].")
        models.append(m)
    cfg["models"] = models
    if path is None and not (cfg.get("out") and cfg.get("benchmark") and models):
        raise UserError("no config: pass --config FILE (ready ones in configs/, e.g. --config offline-default.yaml), "
                        "or all of --out, --benchmark and --model")
    for key in ("out", "benchmark"):
        if not cfg.get(key):
            raise UserError(f"{where}: no '{key}' (set it in the config or pass --{key})")
    if not models:
        raise UserError(f"{where}: no models (set 'models' in the config or pass --model)")
    cfg["out"] = str(cfg["out"])  # relative paths: to where the user runs, like every CLI path
    check_values(cfg, where)
    return cfg


def _check_keys(d: dict, allowed, where: str, prefix: str) -> None:
    for k in d:
        if k not in allowed:
            line = d.key_lines.get(k) if isinstance(d, LineMap) else None
            raise UserError(f"{where}{f':{line}' if line else ''}: unknown key '{prefix}{k}'"
                            f"{did_you_mean(k, allowed, prefix)}")


def check_values(cfg: dict, where: str) -> None:
    """The option values each stage would reject, checked before any stage runs: a typo'd
    judge must not surface only after hours of shift and eval. Only what is cheap (registry
    names, numeric ranges); nothing is loaded or written. The checks are the stages' own."""
    for key, ok, what in (("limit", lambda v: v is None or (type(v) is int and v >= 1), "a positive integer"),
                          ("seed", lambda v: type(v) is int, "an integer")):
        if not ok(cfg[key]):
            raise UserError(f"{where}: {key}: must be {what}, not {cfg[key]!r}")
    if cfg["shift"].get("dry_run"):  # the plan alone leaves eval nothing to answer
        raise UserError(f"{where}: shift.dry_run: `emidbench run` runs every stage; to print the scenario "
                        "table only, use `emidbench shift --dry-run`")
    _check_suite(cfg["suite"], where)
    for i, m in enumerate(cfg["models"]):
        _check_model(cfg["eval"], m, where, i)
    _check_score(cfg["score"], where)


def _check_suite(suite, where: str) -> None:
    """The suite the shift stage will load (a built-in name or a YAML file), loaded now."""
    from emidbench.shift.suites import load_suite

    try:
        load_suite(str(suite))
    except UserError as e:
        raise UserError(f"{where}: suite: {e}") from None


def _check_model_name(model: str, backend: str, where: str, key: str) -> None:
    """A model the hf/vllm backend would load: bundled, a folder, or a hub id it can get.
    A misspelt name must not surface only after the shift stage. Served models (openai)
    are known to their server alone."""
    from emidbench.common import hub
    from emidbench.common.errors import closest
    from emidbench.common.hf import bundled_names, check_local

    if backend not in ("hf", "vllm") or model in bundled_names():
        return
    try:
        check_local(model)  # a path that does not exist, or a file
    except UserError as e:
        raise UserError(f"{where}: {key}: {e}") from None
    if Path(model).expanduser().exists():
        return
    near = closest(model, bundled_names())
    offline = hub.offline_variable("model")
    if (near or offline) and not hub.in_cache(model):
        why = (f"not a bundled model (did you mean '{near}'?), a folder, or a hub id in the local cache" if near
               else f"not a folder, and {offline} is set and it is not in the local Hugging Face cache")
        raise UserError(f"{where}: {key}: model {model!r}: {why}")


def _check_model(defaults: dict, m: dict, where: str, i: int) -> None:
    from emidbench.eval.backends import BACKENDS

    opts = {**defaults, **m}  # as run_pipeline passes them to run_eval
    opts.pop("model", None)

    def key(k: str) -> str:
        return f"models[{i}].{k}" if k in m else f"eval.{k}"

    if "backend" in opts:
        _check_name(BACKENDS, opts["backend"], where, key("backend"))
    for k, v in opts.items():  # one at a time (the others at their defaults): the error names its key
        try:
            EvalOptions.from_mapping({k: v}).check()
        except UserError as e:
            raise UserError(f"{where}: {key(k)}: {e}") from None
        except TypeError:  # `batch_size: eight`: the stage would fail the same way, later
            raise UserError(f"{where}: {key(k)}: expected a number, not {v!r}") from None
    try:  # and together (options that exclude each other)
        EvalOptions.from_mapping(opts).check()
    except UserError as e:
        raise UserError(f"{where}: models[{i}]: {e}") from None
    _check_api(opts, "base_url", "api", where, key)
    _check_model_name(str(m["model"]), str(opts.get("backend", "hf")), where, f"models[{i}].model")


def _check_score(opts: dict, where: str) -> None:
    from emidbench.embedders import EMBEDDERS
    from emidbench.score.judges import check_judge_spec
    from emidbench.score.stage import check_options, run_score

    _check_each(check_options, run_score, opts, where, lambda k: f"score.{k}")
    _check_api(opts, "judge_base_url", "judge_api", where, lambda k: f"score.{k}")
    if "embedder" in opts:
        _check_name(EMBEDDERS, opts["embedder"], where, "score.embedder")
    if opts.get("judge"):  # `openai:gpt-4o`: the registry knows the part before the colon (make_judge)
        try:
            check_judge_spec(opts["judge"])
        except UserError as e:
            raise UserError(f"{where}: score.judge: {e}") from None


def _check_api(opts: dict, url_key: str, api_key: str, where: str, key: Callable[[str], str]) -> None:
    """An OpenAI-compatible server's URL and api options (eval.api / score.judge_api)."""
    from emidbench.common.chat import ChatOptions, check_base_url

    if opts.get(url_key) is not None:
        check_base_url(str(opts[url_key]), f"{where}: {key(url_key)}:")
    if api_key in opts:
        ChatOptions.parse(opts[api_key], f"{where}: {key(api_key)}")


def _check_name(registry, name, where: str, key: str) -> None:
    """A name the stage will look up in its registry (judge, embedder, backend): its error,
    named at the config key."""
    try:
        registry.get(name)
    except UserError as e:
        raise UserError(f"{where}: {key}: {e}") from None


def _check_each(check: Callable, stage: Callable, opts: dict, where: str, key: Callable[[str], str]) -> None:
    """A stage's option check, run once per option the config sets (the others at the
    stage's defaults), so the error names the key that is wrong."""
    defaults = {k: p.default for k, p in inspect.signature(stage).parameters.items()}
    names = list(inspect.signature(check).parameters)
    for k in names:
        if k not in opts:
            continue
        try:
            check(**{n: opts[k] if n == k else defaults[n] for n in names})
        except UserError as e:
            raise UserError(f"{where}: {key(k)}: {e}") from None
        except TypeError:  # `batch_size: eight`: the stage would fail the same way, later
            raise UserError(f"{where}: {key(k)}: expected a number, not {opts[k]!r}") from None


def _unanswered(run: RunDir, slug: str) -> list[str]:
    """Scenarios of the manifest with a question that has no (non-failed) answer in
    RUN/responses/<slug>/: a lost or cut-short responses file is not complete."""
    todo = []
    for s in run.read_manifest().scenarios:
        done = answered(run.responses_path(slug, s.name))
        if any(str(q["question_id"]) not in done for q in run.read_scenario(s.name)):
            todo.append(s.name)
    return todo


def _files_digest(paths) -> str:
    """What a stage read, by content: a rerun after any of these changed is not skipped."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def run_pipeline(cfg: dict, console=None, out=None) -> int:
    """Run every stage not already done; returns the exit status `emidbench eval` alone
    would have had (1: items failed). Failed items do not stop the run: scoring leaves
    them out and the next run asks them again."""
    from emidbench.benchmarks import load_benchmark
    from emidbench.eval import run_eval
    from emidbench.report import run_report
    from emidbench.score import fit_shared_estimator, run_score
    from emidbench.shift import run_shift

    run = RunDir(cfg["out"])
    progress = PipelineRecord.read(run.pipeline_path)
    say = (lambda msg: console.print(msg, highlight=False)) if console else (lambda msg: None)

    shift_fp = fingerprint([cfg["benchmark"], cfg["benchmark_options"], cfg["suite"], cfg["seed"],
                             cfg["limit"], cfg["shift"]])
    if progress.is_done("shift", shift_fp) and run.shifts_complete():
        say("shift: complete, skipped")
    else:
        bopts = dict(cfg["benchmark_options"])
        if cfg["suite"] == "released":  # the benchmark's splits are the scenarios (shift --suite released)
            from emidbench.benchmarks.released import load_scenario_sets
            from emidbench.shift.released import run_released

            if cfg["shift"]:
                raise UserError(f"suite released takes every scenario as released; shift options "
                                f"{', '.join(cfg['shift'])} would be ignored")
            sets = load_scenario_sets(cfg["benchmark"], known_as=bopts.get("known_as"), columns=bopts.get("columns"),
                                      subset=bopts.get("subset"), limit=cfg["limit"])
            run_released(sets, run.root, name=bopts.get("name"), console=console)
        else:
            bench = load_benchmark(cfg["benchmark"], **bopts)  # the seed: the shifts only, as `shift --seed`
            run_shift(bench, cfg["suite"], run.root, seed=cfg["seed"], limit=cfg["limit"], console=console,
                      **cfg["shift"])
        progress.mark("shift", shift_fp)

    slugs, eval_fps = [], {}
    exit_code = 0
    for m in cfg["models"]:
        opts = {**cfg["eval"], **m}
        model = opts.pop("model")
        slug = model_slug(model, opts.get("name"))
        slugs.append(slug)
        eval_fp = fingerprint([shift_fp, model, opts])
        todo = _unanswered(run, slug)
        evaluated = False
        if progress.is_done(f"eval:{slug}", eval_fp) and not todo:
            say(f"eval {slug}: complete, skipped")
        else:
            evaluated = True
            if progress.is_done(f"eval:{slug}", eval_fp) and not opts.get("scenarios"):
                opts = {**opts, "scenarios": ",".join(todo)}  # only what is missing; other files untouched
            summary = run_eval(run.root, model, console=console, **opts)  # its line says what failed
            exit_code = max(exit_code, summary.exit_code)
            if not summary.exit_code:  # not marked: the next run asks the failed items again
                progress.mark(f"eval:{slug}", eval_fp)
        eval_fps[slug] = (eval_fp, evaluated)

    # One estimator for every model, fitted once all of them have answered (score/estimator.py):
    # EMID of two models then differs by their answers, not by two fits' noise.
    score_opts = dict(cfg["score"])
    estimator_fp = None
    if str(score_opts.get("estimator", "shared")) in ("shared", "refit"):
        score_opts["estimator"] = "shared"  # fitted here when its inputs change; each score reuses it
        estimator_fp = fingerprint([{k: score_opts.get(k) for k in ESTIMATOR_KEYS}, cfg["seed"], sorted(slugs),
                                     [_files_digest(run.responses_dir(s).glob("*.jsonl")) for s in sorted(slugs)]])
        if progress.is_done("estimator", f"{estimator_fp}:{_shared_estimator_digest(run)}"):
            say("estimator: complete, skipped")
        else:
            rec = fit_shared_estimator(run.root, sorted(set(slugs)), seed=cfg["seed"], console=console,
                                       **{k: score_opts[k] for k in ESTIMATOR_KEYS if k in score_opts})
            progress.mark("estimator", f"{estimator_fp}:{rec['sha256']}")
        estimator_fp = progress.stages["estimator"]  # with the digest: another estimator, another score

    for slug in slugs:
        eval_fp, evaluated = eval_fps[slug]
        score_fp = fingerprint([eval_fp, cfg["score"], cfg["seed"], estimator_fp,
                                 _files_digest(run.responses_dir(slug).glob("*.jsonl"))])
        if (progress.is_done(f"score:{slug}", score_fp) and not evaluated
                and run.metrics_path(slug).is_file()):
            say(f"score {slug}: complete, skipped")
        else:
            run_score(run.root, slug, seed=cfg["seed"], console=console, **score_opts)
            progress.mark(f"score:{slug}", score_fp)
    run_report(run.root, models=slugs, console=out or console, **cfg["report"])
    return exit_code


ESTIMATOR_KEYS = ("embedder", "vision_encoder", "text_encoder", "estimator_ensemble")  # what the shared fit depends on


def _shared_estimator_digest(run: RunDir) -> str | None:
    """The digest of the shared estimator on disk (None if there is none): refitted by a
    `score --estimator refit` since, it is not the one this pipeline fitted."""
    from emidbench.score.estimator import read_record

    rec = read_record(run.root / "scores")
    return rec.get("sha256") if rec else None
