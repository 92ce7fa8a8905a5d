"""`openai:<model>`: LLaVA-Bench's GPT-4 judge protocol over any OpenAI-compatible
chat-completions endpoint (OpenAI, or vLLM / SGLang / Ollama / TGI serving a local
model: --judge-base-url).

As LLaVA's review scripts: the system message, the review as the user message,
temperature 0.2, max_tokens 1024. The HTTP side is the ChatClient the eval backend uses
too (emidbench/common/chat.py, the official `openai` client): `concurrency` requests in
flight, 429/5xx/time-outs retried with backoff, 401/403/404, a model the server does not
serve and a server that refuses connections stop the run with one clear line; an answer
without choices or with an empty message is that item's failure (counted, left out).
The key is read from the environment variable named by --judge-api-key-env and is never
written anywhere (the judge identity holds the URL and the model, not the key).
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Iterator

from emidbench.common.errors import UserError
from emidbench.score.judges import JUDGES, Judge, JudgeOptions
from emidbench.score.judges.protocol import JudgePrompt

TEMPERATURE = 0.2
MAX_TOKENS = 1024


@JUDGES.register("openai", "openai:<model>: LLaVA-Bench's judge protocol over an OpenAI-compatible API")
class OpenAIJudge(Judge):
    def __init__(self, model: str, options: JudgeOptions = JudgeOptions()):
        from emidbench.common.chat import ChatClient, ChatOptions

        if not model:
            raise UserError("--judge openai needs a model name: openai:<model>, e.g. openai:gpt-4o")
        if options.concurrency < 1:
            raise UserError(f"--concurrency must be at least 1 (got {options.concurrency})")
        self.model = model
        self.client = ChatClient(options.base_url, options.api_key_env,
                                 ChatOptions.parse(options.api, "judge api options"),
                                 option_prefix="--judge-", model_option="--judge openai:<model>")
        self.concurrency = options.concurrency
        self.temperature = TEMPERATURE
        self.max_tokens = options.max_tokens or MAX_TOKENS
        self.identity = f"openai:{model}@{self.client.url}|temperature={self.temperature}|max_tokens={self.max_tokens}"

    def describe(self) -> dict:
        return {"model": self.model, "url": self.client.url, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "api_key_env": self.client.api_key_env,
                **self.client.options.record()}

    def _ask(self, p: JudgePrompt) -> str | Exception:
        body = {"model": self.model, "messages": p.messages(), "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        try:
            return self.client.complete(body)
        except RuntimeError as e:  # this item failed (retries exhausted, a 4xx about it)
            return e

    def judge(self, prompts: list[JudgePrompt]) -> Iterator[tuple[int, str | Exception]]:
        """Replies as they arrive. A UserError (bad key, wrong URL, server down) stops the
        run: requests not yet sent are cancelled, those in flight are awaited and their
        replies still yielded (so they get cached), then the error is raised."""
        pool = ThreadPoolExecutor(self.concurrency)
        error: UserError | None = None
        try:
            futures = {pool.submit(self._ask, p): i for i, p in enumerate(prompts)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.get):
                    if fut.cancelled():
                        continue
                    try:
                        reply = fut.result()
                    except UserError as e:
                        error = error or e
                        continue
                    yield futures[fut], reply
                if error is not None:
                    pending = {f for f in pending if not f.cancel()}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if error is not None:
            raise error
