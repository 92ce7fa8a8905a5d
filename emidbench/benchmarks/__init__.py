"""Benchmark loaders: one per source, each returning a Benchmark (see base.py).

`load_benchmark(spec)` resolves, in order: a registered name (`mini`, `llava-bench`,
...), a local folder in LLaVA's eval layout, a folder in DomainBed's
<domain>/<class>/<image> layout (a classification task), a local `datasets` folder, a
.jsonl or .parquet file, and finally a Hugging Face hub dataset id (optionally `hf:<id>`).
Second visual domains (for natural shifts) are attached with `domains={name: spec}`.
"""

from __future__ import annotations

from pathlib import Path

from emidbench.benchmarks.base import Benchmark, Sample
from emidbench.common.errors import UserError, did_you_mean
from emidbench.common.images import decode_image, image_format
from emidbench.common.registry import Registry

# A registered benchmark is a factory called as factory(seed=, size=): generated ones
# (mini) draw with the seed at the size; the hub-backed ones take no size.
BENCHMARKS: Registry = Registry("benchmark")


@BENCHMARKS.register("mini", "procedurally generated shapes world (offline demo): mini + mini_wild")
def _mini(seed: int = 0, size: str = "default") -> Benchmark:
    from emidbench.benchmarks.mini import load_mini

    return load_mini(seed=seed, size=size)


@BENCHMARKS.register("mini-domains", "the mini shapes as a 3-way classification in 4 visual styles (offline "
                                    "domain-shift demo): plain, photo, sketch, microscopy")
def _mini_domains(seed: int = 0, size: str = "default") -> Benchmark:
    from emidbench.benchmarks.mini_domains import load_mini_domains

    return load_mini_domains(seed=seed, size=size)


@BENCHMARKS.register("llava-bench", "LLaVA-Bench COCO (ID) + In-the-Wild (natural domain), from the hub")
def _llava_bench(seed: int = 0, size: str = "default") -> Benchmark:
    from emidbench.benchmarks.hf_dataset import load_hf_dataset

    _fixed_size("llava-bench", size)
    coco = load_hf_dataset("lmms-lab/llava-bench-coco")
    wild = load_hf_dataset("lmms-lab/llava-bench-in-the-wild")
    coco.domains[wild.name] = wild.samples
    return coco


@BENCHMARKS.register("llava-bench-coco", "LLaVA-Bench COCO from the hub (lmms-lab/llava-bench-coco)")
def _coco(seed: int = 0, size: str = "default") -> Benchmark:
    from emidbench.benchmarks.hf_dataset import load_hf_dataset

    _fixed_size("llava-bench-coco", size)
    return load_hf_dataset("lmms-lab/llava-bench-coco")


def _fixed_size(name: str, size: str) -> None:
    if size != "default":
        raise UserError(f"--size {size}: benchmark {name} is a released dataset of one size (--size is for mini)")


def load_benchmark(
    spec: str,
    *,
    name: str | None = None,
    split: str | None = None,
    subset: str | None = None,
    columns: str | dict | None = None,
    known_as: str | None = None,
    domains: dict[str, str] | None = None,
    seed: int = 0,
    size: str = "default",
) -> Benchmark:
    """Load the ID benchmark `spec` and any second visual domains {name: spec}."""
    bench = _load_one(spec, name=name, split=split, subset=subset, columns=columns,
                      known_as=known_as, seed=seed, size=size)
    for domain, dspec in (domains or {}).items():
        other = _load_one(dspec, name=domain, split=split, columns=columns, seed=seed, size=size)
        if domain in bench.domains or domain == bench.name:
            raise UserError(f"domain {domain!r} given twice")
        bench.domains[domain] = other.samples
    return bench


def _load_one(spec: str, *, name=None, split=None, subset=None, columns=None, known_as=None,
              seed=0, size="default") -> Benchmark:
    from emidbench.benchmarks.files import load_file
    from emidbench.benchmarks.hf_dataset import load_hf_dataset
    from emidbench.benchmarks.llava_folder import load_llava_folder, looks_like_llava_folder

    if spec in BENCHMARKS:
        bench = BENCHMARKS.get(spec)(seed=seed, size=size)
        if name:
            bench.name = name
        return bench
    if spec.startswith("hf:"):
        return load_hf_dataset(spec[3:], split=split, subset=subset, columns=columns, name=name, known_as=known_as)
    path = Path(spec)
    if path.is_dir() and looks_like_llava_folder(path):
        return load_llava_folder(path, name=name)
    from emidbench.benchmarks.domain_folder import load_domain_folder, looks_like_domain_folder

    if path.is_dir() and looks_like_domain_folder(path):  # DomainBed's <domain>/<class>/<image>
        return load_domain_folder(path, name=name)
    if path.is_file():
        return load_file(path, columns=columns, name=name)
    if path.is_dir():
        return load_hf_dataset(spec, split=split, subset=subset, columns=columns, name=name, known_as=known_as)
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return load_hf_dataset(spec, split=split, subset=subset, columns=columns, name=name, known_as=known_as)
    known = ", ".join(BENCHMARKS)
    raise UserError(f"unknown benchmark {spec!r}{did_you_mean(spec, BENCHMARKS)}: not a registered name ({known}), "
                    "a folder, a file or a hub id")


__all__ = ["BENCHMARKS", "Benchmark", "Sample", "decode_image", "image_format", "load_benchmark"]
