"""`emidbench shift`: the ID set and every shifted variant of it -> RUN/shifts/.

    suites.py     shift suites (YAML) -> scenario plans
    visual.py     image corruptions (imagecorruptions), registry CORRUPTIONS; fast PNG
    text/         text perturbations (nlpaug, EDA), registry PERTURBATIONS
    translate.py  other languages: the benchmark's translations or a translation model
    split.py      easy/normal/hard split of a second visual domain
    stage.py      run_shift: the stage itself

The text perturbations (nlpaug, nltk) are imported only when used:
`emidbench.shift.PERTURBATIONS` / `perturb_text` load them on first access.
"""

from emidbench.shift.split import natural_split, pixel_embedder
from emidbench.shift.stage import print_plan, run_shift
from emidbench.shift.suites import ScenarioPlan, Suite, list_suites, load_suite, plan_scenarios
from emidbench.shift.translate import Translator
from emidbench.shift.visual import CORRUPTIONS, corrupt_image, fast_png

__all__ = [
    "run_shift", "plan_scenarios", "print_plan", "list_suites", "load_suite", "ScenarioPlan", "Suite",
    "CORRUPTIONS", "corrupt_image", "fast_png", "natural_split", "pixel_embedder", "Translator",
    "PERTURBATIONS", "perturb_text",
]


def __getattr__(name: str):
    if name in ("PERTURBATIONS", "perturb_text"):
        from emidbench.shift import text

        return getattr(text, name)
    raise AttributeError(f"module 'emidbench.shift' has no attribute {name!r}")
