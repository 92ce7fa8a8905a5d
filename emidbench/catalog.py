"""Everything a user can name: what `emidbench list` shows."""

from __future__ import annotations

from importlib import import_module

# kind -> (module, attribute holding a Registry)
REGISTRIES = {
    "benchmarks": ("emidbench.benchmarks", "BENCHMARKS"),
    "corruptions": ("emidbench.shift.visual", "CORRUPTIONS"),
    "text perturbations": ("emidbench.shift.text", "PERTURBATIONS"),
    "model backends": ("emidbench.eval.backends", "BACKENDS"),
    "embedders": ("emidbench.embedders", "EMBEDDERS"),
    "judges": ("emidbench.score.judges", "JUDGES"),
}


def catalog() -> dict[str, list[tuple[str, str]]]:
    from emidbench.shift import list_suites

    out = {"suites": sorted([*list_suites().items(),
                             ("released", "--benchmark's own splits as scenarios, verbatim (the paper's released sets)")])}
    for kind, (module, attr) in REGISTRIES.items():
        reg = getattr(import_module(module), attr)
        out[kind] = [(name, reg.describe(name)) for name in reg]
    return out
