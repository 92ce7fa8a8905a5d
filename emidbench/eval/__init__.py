"""`emidbench eval`: answers of one model to every scenario -> RUN/responses/<model>/.

    backends/   hf (transformers), openai (HTTP), vllm; registry BACKENDS
    stage.py    run_eval: batching, resume, response cache, torchrun sharding
    importer.py import_responses: released answer files -> RUN/responses
"""

from emidbench.eval.importer import import_responses
from emidbench.eval.stage import EvalSummary, run_eval

__all__ = ["run_eval", "import_responses", "EvalSummary"]
