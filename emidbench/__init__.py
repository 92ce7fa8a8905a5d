"""emidbench: how much do multimodal LLMs degrade under distribution shift?

Four stages, each a function from a run directory to a run directory:
shift -> eval -> score -> report (see emidbench.rundir for the layout).
"""

__version__ = "0.1.0"
