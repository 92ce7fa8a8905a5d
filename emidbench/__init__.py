"""emidbench: how much do multimodal LLMs degrade under distribution shift?

Four stages, each a function from a run directory to a run directory:
shift -> eval -> score -> report (see emidbench.rundir for the layout).
"""

import os

# OpenMP threads that wait for work sleep instead of spinning (unless the user chose
# otherwise). torch's default busy-wait turns every small parallel region into a fight
# for the cores when anything else runs on them: the CLUB fit (thousands of 256x250
# matrix products) took 413 ms a step with 2 spinning threads on a loaded 2-core machine
# against 13 ms with sleeping ones (scripts/bench_scale.py measures it). Set before torch
# is imported: the OpenMP runtime reads it once, when it loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
