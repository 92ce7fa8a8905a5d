"""Backend `vllm` (optional extra: pip install 'emidbench[vllm]'): vLLM's offline engine,
for throughput on one GPU and for models too big for one GPU (tensor parallelism over
every visible GPU, or CUDA_VISIBLE_DEVICES to choose them).

    emidbench eval RUN --backend vllm --model llava-hf/llava-1.5-13b-hf --batch-size 256

vLLM applies the model's own chat template to the messages (image as a data URL, then
the question), so prompts are built the same way as with the `hf` backend. It runs
as one process that drives all GPUs itself: do not start it under torchrun. For a vLLM
*server* (several hosts, or shared by several users), run `vllm serve` and use the
`openai` backend with --base-url. Not covered by the test suite (no GPU there).
"""

from __future__ import annotations

from emidbench.common.errors import UserError
from emidbench.eval.backends import BACKENDS, Request, Result


@BACKENDS.register("vllm", "vLLM offline engine, tensor parallel over the visible GPUs (pip install 'emidbench[vllm]')")
class VLLMBackend:
    shardable = False  # vLLM parallelises itself; torchrun ranks would each start an engine

    def __init__(self, model: str, options):
        max_new_tokens, temperature, batch_size = options.max_new_tokens, options.temperature, options.batch_size
        dtype, trust_remote_code, tensor_parallel_size = options.dtype, options.trust_remote_code, options.tensor_parallel_size
        try:
            from vllm import SamplingParams
        except ImportError:
            raise UserError("vllm is not installed: pip install 'emidbench[vllm]'") from None
        import torch

        self.model_id = model
        self.tensor_parallel_size = tensor_parallel_size or max(1, torch.cuda.device_count())
        self.dtype = dtype
        self.trust_remote_code = trust_remote_code
        self.params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature)
        self.llm = None
        # vLLM schedules its own batches; hand it many requests at once.
        self.batch_size = max(64, int(batch_size))
        self.identity = f"vllm:{model}:{dtype}"

    def load(self) -> None:
        if self.llm is None:
            from vllm import LLM

            from emidbench.common.hf import resolve_model

            self.llm = LLM(model=resolve_model(self.model_id), tensor_parallel_size=self.tensor_parallel_size,
                           trust_remote_code=self.trust_remote_code, dtype=self.dtype)

    def record(self) -> dict:
        return {"tensor_parallel_size": self.tensor_parallel_size, "dtype": self.dtype}

    def prompt(self, req: Request) -> str:
        return f"{req.system_prompt}\n\n{req.question}" if req.system_prompt else req.question

    def answer(self, requests: list[Request]) -> list[Result]:
        from emidbench.common.chat import data_url
        from emidbench.eval.backends.openai import chat_messages

        results: list[Result | None] = [None] * len(requests)
        conversations, index = [], []
        for i, r in enumerate(requests):
            try:
                conversations.append(chat_messages(r, data_url(r.image)))
                index.append(i)
            except Exception:
                results[i] = Result("", self.prompt(r), "image does not decode (not a known image format)")
        if conversations:
            self.load()
            outs = self.llm.chat(conversations, self.params, use_tqdm=False)
            for i, o in zip(index, outs):
                results[i] = Result(o.outputs[0].text.strip(), self.prompt(requests[i]))
        return results
