"""`emidbench eval`: one model's answers to every scenario -> RUN/responses/<model>/.

    stage.py     run_eval: requests, resume, batching, progress, the run record
    options.py   EvalOptions: every eval option (CLI flags, config keys, backends' input)
    cache.py     the content-addressed response cache (RUN/cache/responses/)
    sharding.py  torchrun / accelerate ranks and their shard files (the answer-record
                 format and merge_answers are rundir.answers)
    importer.py  import_responses: released answer files -> RUN/responses/
    backends/    hf (transformers), openai (HTTP), vllm; registry BACKENDS

Under torchrun or accelerate launch: `torchrun --nproc_per_node=N -m emidbench eval RUN --model M`.
"""

from emidbench.eval.importer import ImportSummary, import_responses
from emidbench.eval.options import EvalOptions
from emidbench.eval.stage import EvalSummary, run_eval

__all__ = ["run_eval", "import_responses", "EvalOptions", "EvalSummary", "ImportSummary"]
