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


def chat_messages(req: Request, image_url: str, example_urls: list[str] = ()) -> list[dict]:
    """The OpenAI message list: optional system message, each in-context example as a user
    turn (its image_url part, its question) and the assistant's answer, then the image and
    the question."""
    def user(url: str, text: str) -> dict:
        return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                            {"type": "text", "text": text}]}

    messages = [{"role": "system", "content": req.system_prompt}] if req.system_prompt else []
    for ex, url in zip(req.examples, example_urls):
        messages += [user(url, ex.question), {"role": "assistant", "content": ex.answer}]
    messages.append(user(image_url, req.question))
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

    takes_examples = True

    def prompt(self, req: Request) -> str:
        """The text of the conversation (the images are data URLs, keyed by hash): system,
        each example's question and answer, the question."""
        parts = [req.system_prompt] if req.system_prompt else []
        for ex in req.examples:
            parts += [f"[image] {ex.question}", f"[assistant] {ex.answer}"]
        parts.append(f"[image] {req.question}" if req.examples else req.question)
        return "\n\n".join(parts)

    def _one(self, req: Request) -> Result:
        try:
            url = data_url(req.image)
            example_urls = [data_url(ex.image) for ex in req.examples]
        except Exception:
            return Result("", self.prompt(req), "image does not decode (not a known image format)")
        body = {"model": self.model, "messages": chat_messages(req, url, example_urls),
                "max_tokens": self.max_new_tokens, "temperature": self.temperature}
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
