"""`openai:<model>`: LLaVA-Bench's GPT-4 judge over any OpenAI-compatible endpoint."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from emidbench.score.judges import JUDGES
from emidbench.score.judges.protocol import JudgePrompt


@JUDGES.register("openai", "openai:<model>: LLaVA-Bench's judge protocol over an OpenAI-compatible API")
class OpenAIJudge:
    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, max_tokens: int = 1024, **_):
        from emidbench.errors import UserError
        from emidbench.eval.backends.openai import ChatClient

        if not model:
            raise UserError("--judge openai needs a model: openai:<model>, e.g. openai:gpt-4o")
        self.model = model
        self.client = ChatClient(base_url or "https://api.openai.com/v1", api_key_env)
        self.concurrency = max(1, concurrency)
        self.max_tokens = max_tokens
        self.identity = f"openai:{self.client.url}:{model}"

    def _one(self, p: JudgePrompt) -> str | Exception:
        body = {"model": self.model, "temperature": 0.2, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": p.system}, {"role": "user", "content": p.content}]}
        try:
            return self.client.complete(body)
        except RuntimeError as e:
            return e

    def judge(self, prompts: list[JudgePrompt]) -> list:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._one, prompts))
