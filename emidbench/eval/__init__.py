"""`emidbench eval`: one model's answers to every scenario -> RUN/responses/<model>/.

    stage.py     run_eval: requests, resume, batching, progress, the run record
    options.py   EvalOptions: every eval option (CLI flags, config keys, backends' input)
    cache.py     the content-addressed response cache (RUN/cache/responses/)
    sharding.py  torchrun / accelerate ranks, shard files, merging answer files
    importer.py  import_responses: released answer files -> RUN/responses/
    backends/    hf (transformers), openai (HTTP), vllm; registry BACKENDS

`python -m emidbench.eval RUN --model M ...` runs the stage alone (e.g. under torchrun).
"""

from emidbench.eval.importer import ImportSummary, import_responses
from emidbench.eval.options import EvalOptions
from emidbench.eval.stage import EvalSummary, run_eval

__all__ = ["run_eval", "import_responses", "EvalOptions", "EvalSummary", "ImportSummary"]
