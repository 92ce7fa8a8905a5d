"""`emidbench shift`: the ID set and every shifted variant of it -> RUN/shifts/.

    suites.py     shift suites (YAML) -> scenario plans
    visual.py     image corruptions (imagecorruptions), registry CORRUPTIONS
    text/         text perturbations (nlpaug, EDA), registry PERTURBATIONS
    translate.py  other languages: the benchmark's translations or a translation model
    split.py      easy/normal/hard split of a second visual domain
    stage.py      run_shift: the stage itself
"""

from emidbench.shift.stage import run_shift
from emidbench.shift.suites import list_suites, load_suite, plan_scenarios

__all__ = ["run_shift", "list_suites", "load_suite", "plan_scenarios"]
