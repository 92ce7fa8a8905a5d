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


# The models shipped inside the package (emidbench/assets), by the option that takes them.
BUNDLED_MODELS = {
    "tiny-llava": "--model: a tiny LlavaForConditionalGeneration trained on the mini world (the demo's model)",
    "mini-clip": "--vision-encoder (paper embedder): a toy CLIP vision tower trained on the mini world",
    "mini-xlmr": "--text-encoder (paper embedder): a toy XLM-R trained on the mini world",
}


def catalog() -> dict[str, list[tuple[str, str]]]:
    from emidbench.common.hf import bundled_names
    from emidbench.shift import list_suites

    out = {"suites": sorted([*list_suites().items(),
                             ("released", "--benchmark's own splits as scenarios, verbatim (the paper's released sets)")])}
    for kind, (module, attr) in REGISTRIES.items():
        reg = getattr(import_module(module), attr)
        out[kind] = [(name, reg.describe(name)) for name in reg]
    out["bundled models"] = [(name, BUNDLED_MODELS.get(name, "bundled model")) for name in sorted(bundled_names())]
    return out
