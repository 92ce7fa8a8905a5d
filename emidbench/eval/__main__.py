"""`python -m emidbench.eval RUN --model M ...`: the eval verb alone (for torchrun)."""

import sys

from emidbench.cli import main

sys.argv = [sys.argv[0], "eval", *sys.argv[1:]]
main()
