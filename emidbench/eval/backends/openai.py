"""Backend `openai`: any OpenAI-compatible chat-completions server — GPT-4o, or vLLM /
SGLang / Ollama / TGI serving a local model. Plain HTTP (stdlib), images as base64 data
URLs, requests in parallel, retries with exponential backoff on 429 / 5xx / time-outs.
The API key comes from an environment variable and is never written anywhere."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from emidbench.errors import UserError
from emidbench.eval.backends import BACKENDS, Request, Result

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class ChatClient:
    """POST {base_url}/chat/completions with retries. Shared by the eval backend and the
    OpenAI judge."""

    def __init__(self, base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 retries: int = 5, backoff: float | None = None):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._key = os.environ.get(api_key_env, "")
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries
        self.backoff = float(os.environ.get("EMIDBENCH_RETRY_BACKOFF", "1.0")) if backoff is None else backoff

    def complete(self, body: dict) -> str:
        """The first choice's message text. Raises UserError for what no retry can fix
        (401, 403, 404, unreachable server); RuntimeError for an item that failed."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                return _message_text(payload)
            except urllib.error.HTTPError as e:
                detail = _error_detail(e)
                if e.code in (401, 403):
                    raise UserError(f"{self.url}: HTTP {e.code} (check the key in ${self.api_key_env}): {detail}") from None
                if e.code == 404:
                    raise UserError(f"{self.url}: HTTP 404 (wrong --base-url or model name): {detail}") from None
                last = f"HTTP {e.code}: {detail}"
                if e.code not in RETRY_STATUS:
                    raise RuntimeError(last) from None
            except urllib.error.URLError as e:
                last = f"cannot connect ({e.reason})"
                if isinstance(e.reason, ConnectionRefusedError) and attempt >= 1:
                    raise UserError(f"{self.url}: server unreachable ({e.reason})") from None
            except (TimeoutError, OSError) as e:
                last = f"timed out or connection lost ({type(e).__name__})"
            except (ValueError, KeyError, IndexError) as e:
                last = f"malformed response ({type(e).__name__})"
        raise RuntimeError(f"gave up after {self.retries + 1} tries: {last}")


def _message_text(payload: dict) -> str:
    content = payload["choices"][0]["message"]["content"]
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        return e.read().decode("utf-8", "replace")[:200].replace("\n", " ")
    except Exception:
        return e.reason or ""


def data_url(image: bytes) -> str:
    from emidbench.benchmarks.base import image_format

    fmt = image_format(image)
    mime = {"jpg": "jpeg"}.get(fmt, fmt)
    return f"data:image/{mime};base64," + base64.b64encode(image).decode("ascii")


@BACKENDS.register("openai", "any OpenAI-compatible chat-completions server (GPT-4o, vLLM, SGLang, Ollama, TGI)")
class OpenAIBackend:
    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, max_new_tokens: int = 128, temperature: float = 0.0, **_):
        self.model = model
        self.client = ChatClient(base_url or "https://api.openai.com/v1", api_key_env)
        self.concurrency = max(1, concurrency)
        self.batch_size = 4 * self.concurrency
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.identity = f"openai:{self.client.url}:{model}"

    def prompt(self, req: Request) -> str:
        return req.question

    def _one(self, req: Request) -> Result:
        messages = []
        if req.system_prompt:
            messages.append({"role": "system", "content": req.system_prompt})
        try:
            url = data_url(req.image)
        except Exception:
            return Result("", req.question, "image does not decode")
        messages.append({"role": "user", "content": [{"type": "text", "text": req.question},
                                                     {"type": "image_url", "image_url": {"url": url}}]})
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_new_tokens,
                "temperature": self.temperature}
        try:
            return Result(self.client.complete(body).strip(), req.question)
        except RuntimeError as e:
            return Result("", req.question, str(e))

    def answer(self, requests: list[Request]) -> list[Result]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._one, requests))
