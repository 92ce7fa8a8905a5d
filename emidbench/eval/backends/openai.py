"""Backend `openai`: any OpenAI-compatible chat-completions server — GPT-4o, or vLLM /
SGLang / Ollama / TGI serving a local model (a model too big for one GPU: serve it with
`vllm serve MODEL --tensor-parallel-size N` and point --base-url at it).

Plain HTTP with the standard library (no extra package). Each question is one
POST {base_url}/chat/completions with the image as a base64 data URL; `concurrency`
requests are in flight at once; 429, 5xx, time-outs and dropped connections are retried
with exponential backoff (honouring Retry-After); 401/403/404 stop the run with one clear
line. The key is read from an environment variable and is never written anywhere: not
to RUN, not to logs, not into error messages (a server echoing it back is scrubbed).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from emidbench.common.chat import DEFAULT_BASE_URL, ChatClient, data_url
from emidbench.eval.backends import BACKENDS, Request, Result
from emidbench.eval.options import EvalOptions


def chat_messages(req: Request, image_url: str) -> list[dict]:
    """The OpenAI message list: optional system message, then the image and the question."""
    messages = [{"role": "system", "content": req.system_prompt}] if req.system_prompt else []
    messages.append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                                 {"type": "text", "text": req.question}]})
    return messages


@BACKENDS.register("openai", "any OpenAI-compatible chat-completions server (GPT-4o, vLLM, SGLang, Ollama, TGI)")
class OpenAIBackend:
    def __init__(self, model: str, options: EvalOptions):
        base_url, api_key_env, concurrency = options.base_url, options.api_key_env, options.concurrency
        max_new_tokens, temperature = options.max_new_tokens, options.temperature
        self.model = model
        self.client = ChatClient(base_url or DEFAULT_BASE_URL, api_key_env)
        self.concurrency = max(1, int(concurrency))
        # A few rounds of requests per batch keeps every connection busy while still
        # writing answers to disk often (a kill loses at most one batch).
        self.batch_size = 4 * self.concurrency
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.identity = f"openai:{self.client.url}:{model}"

    def record(self) -> dict:
        return {"base_url": self.client.url.rsplit("/chat/completions", 1)[0], "api_key_env": self.client.api_key_env,
                "concurrency": self.concurrency}

    def prompt(self, req: Request) -> str:
        return f"{req.system_prompt}\n\n{req.question}" if req.system_prompt else req.question

    def _one(self, req: Request) -> Result:
        try:
            url = data_url(req.image)
        except Exception:
            return Result("", self.prompt(req), "image does not decode (not a known image format)")
        body = {"model": self.model, "messages": chat_messages(req, url), "max_tokens": self.max_new_tokens,
                "temperature": self.temperature}
        try:
            return Result(self.client.complete(body).strip(), self.prompt(req))
        except RuntimeError as e:
            return Result("", self.prompt(req), str(e))

    def answer(self, requests: list[Request]) -> list[Result]:
        with ThreadPoolExecutor(min(self.concurrency, len(requests)) or 1) as pool:
            return list(pool.map(self._one, requests))
