"""Backend `openai`: any OpenAI-compatible chat-completions server — GPT-4o, Azure OpenAI,
or vLLM / SGLang / Ollama / TGI / `transformers serve` serving a local model (a model too
big for one GPU: serve it with `vllm serve MODEL --tensor-parallel-size N` and point
--base-url at it).

The HTTP side is common/chat.py's ChatClient (the official `openai` client): each question
is one chat completion with the image as a base64 data URL; `concurrency` requests are in
flight at once; 429, 5xx, time-outs and dropped connections are retried by the client
(honouring Retry-After); 401/403/404, a model the server does not serve and a server that
is down stop the run with one clear line. The key is read from an environment variable
and is never written anywhere.

The request sets what decides the answer instead of leaving it to the server's defaults
(`transformers serve` would otherwise use the checkpoint's generation config and up to
1024 new tokens): max_tokens, temperature (0 = greedy), and seed 0 when sampling.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from emidbench.common.chat import ChatClient, ChatOptions, ServerUnreachable, data_url
from emidbench.eval.backends import BACKENDS, Backend, Request, Result
from emidbench.eval.options import EvalOptions


def chat_messages(req: Request, image_url: str) -> list[dict]:
    """The OpenAI message list: optional system message, then the image and the question."""
    messages = [{"role": "system", "content": req.system_prompt}] if req.system_prompt else []
    messages.append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                                 {"type": "text", "text": req.question}]})
    return messages


@BACKENDS.register("openai", "any OpenAI-compatible chat-completions server (GPT-4o, Azure, vLLM, SGLang, Ollama, "
                             "transformers serve)")
class OpenAIBackend(Backend):
    def __init__(self, model: str, options: EvalOptions):
        base_url, api_key_env, concurrency = options.base_url, options.api_key_env, options.concurrency
        max_new_tokens, temperature = options.max_new_tokens, options.temperature
        self.model = model
        self.client = ChatClient(base_url, api_key_env, ChatOptions.parse(options.api, "eval api options"))
        self.concurrency = max(1, int(concurrency))
        # A few rounds of requests per batch keeps every connection busy while still
        # writing answers to disk often (a kill loses at most one batch).
        self.batch_size = 4 * self.concurrency
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.identity = f"openai:{self.client.url}:{model}"
        self.answered = 0  # answers received in this run (decides the exit code when the server goes away)

    def record(self) -> dict:
        return {"base_url": self.client.base_url, "api_key_env": self.client.api_key_env,
                "concurrency": self.concurrency, **self.client.options.record()}

    def prompt(self, req: Request) -> str:
        return f"{req.system_prompt}\n\n{req.question}" if req.system_prompt else req.question

    def _one(self, req: Request) -> Result:
        try:
            url = data_url(req.image)
        except Exception:
            return Result("", self.prompt(req), "image does not decode (not a known image format)")
        body = {"model": self.model, "messages": chat_messages(req, url), "max_tokens": self.max_new_tokens,
                "temperature": self.temperature}
        if self.temperature > 0:
            body["seed"] = 0
        try:
            text = self.client.complete(body).strip()
        except RuntimeError as e:
            return Result("", self.prompt(req), str(e))
        self.answered += 1
        return Result(text, self.prompt(req))

    def answer(self, requests: list[Request], prompts: list[str] | None = None) -> list[Result]:
        kept = self.answered  # answers of earlier batches: the stage has written them
        try:
            with ThreadPoolExecutor(min(self.concurrency, len(requests)) or 1) as pool:
                return list(pool.map(self._one, requests))
        except ServerUnreachable as e:
            if kept:  # the server went away mid-run: what was answered is kept
                e = ServerUnreachable(f"{e} - the server went away after {kept} answers in this run (kept); "
                                      "rerun to answer the rest")
                e.exit_code = 1
                raise e from None
            raise
