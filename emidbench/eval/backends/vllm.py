"""Backend `vllm` (optional extra `emidbench[vllm]`): vLLM's offline engine with tensor
parallelism, for models too big for one GPU. Thin by design; for a vLLM *server*, use
the `openai` backend with --base-url."""

from __future__ import annotations

from emidbench.errors import UserError
from emidbench.eval.backends import BACKENDS, Request, Result


@BACKENDS.register("vllm", "vLLM offline engine (tensor parallel); pip install 'emidbench[vllm]'")
class VLLMBackend:
    def __init__(self, model: str, max_new_tokens: int = 128, temperature: float = 0.0, batch_size: int = 64,
                 tensor_parallel_size: int | None = None, trust_remote_code: bool = False, **_):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise UserError("vllm is not installed: pip install 'emidbench[vllm]'") from None
        import torch

        tp = tensor_parallel_size or max(1, torch.cuda.device_count())
        self.llm = LLM(model=model, tensor_parallel_size=tp, trust_remote_code=trust_remote_code)
        self.params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature)
        self.batch_size = batch_size
        self.identity = f"vllm:{model}"

    def prompt(self, req: Request) -> str:
        return req.question

    def answer(self, requests: list[Request]) -> list[Result]:
        from emidbench.eval.backends.openai import data_url

        conversations = []
        for r in requests:
            msgs = [{"role": "system", "content": r.system_prompt}] if r.system_prompt else []
            msgs.append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(r.image)}},
                                                     {"type": "text", "text": r.question}]})
            conversations.append(msgs)
        outs = self.llm.chat(conversations, self.params, use_tqdm=False)
        return [Result(o.outputs[0].text.strip(), r.question) for o, r in zip(outs, requests)]
