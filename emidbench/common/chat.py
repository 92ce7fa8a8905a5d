"""The chat-completions client shared by the openai eval backend and the openai judge:
POST {base_url}/chat/completions with retries and backoff; the key read from an
environment variable and never written anywhere (not to RUN, not to logs, not into
error messages: a server echoing it back is scrubbed)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request

from emidbench.common.errors import UserError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class ChatClient:
    """POST {base_url}/chat/completions with retries. Shared by the eval backend and the
    OpenAI judge.

    Backoff before retry k (k = 1, 2, ...): the server's Retry-After if it sent one, else
    backoff * 2**(k-1) * a jitter factor in [0.5, 1) drawn from an RNG seeded with `seed`,
    capped at max_backoff seconds."""

    def __init__(self, base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 retries: int = 6, backoff: float = 1.0, max_backoff: float = 60.0, seed: int = 0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self._key = os.environ.get(api_key_env, "")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the key
        return f"ChatClient({self.url!r}, api_key_env={self.api_key_env!r})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        with self._lock:
            jitter = 0.5 + 0.5 * self._rng.random()
        return min(self.backoff * 2 ** (attempt - 1) * jitter, self.max_backoff)

    def complete(self, body: dict) -> str:
        """The first choice's message text.

        Raises UserError for what no retry fixes (401/403: the key; 404: the URL or model
        name; a server that refuses connections or does not resolve), RuntimeError for a
        failed item (another 4xx such as an image the API rejects, or retries exhausted)."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last, retry_after = "", None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
            retry_after = None
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = self._scrub(_error_detail(e))
                if e.code in (401, 403):
                    why = "is not set" if not self._key else "was rejected"
                    raise UserError(f"{self.url}: HTTP {e.code} (check the key in ${self.api_key_env}: it {why}): "
                                    f"{detail}") from None
                if e.code == 404:
                    raise UserError(f"{self.url}: HTTP 404 (wrong --base-url or model name): {detail}") from None
                last = f"HTTP {e.code}: {detail}"
                if e.code not in RETRY_STATUS:
                    raise RuntimeError(last) from None
                retry_after = _retry_after(e.headers)
                continue
            except urllib.error.URLError as e:
                reason = e.reason
                if isinstance(reason, (ConnectionRefusedError, socket.gaierror)) and attempt >= 1:
                    raise UserError(f"cannot connect to {self.url} ({reason}); is the server running? "
                                    "check --base-url") from None
                last = f"cannot connect ({self._scrub(str(reason))})"
                continue
            except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
                last = f"timed out or connection lost ({type(e).__name__})"
                continue
            try:
                return _message_text(json.loads(raw.decode("utf-8")))
            except (ValueError, KeyError, IndexError, TypeError) as e:
                last = f"malformed response ({type(e).__name__}: {self._scrub(str(e))[:120]})"
        raise RuntimeError(f"gave up after {self.retries + 1} tries: {last}")


def _message_text(payload: dict) -> str:
    content = payload["choices"][0]["message"]["content"]
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        return e.read().decode("utf-8", "replace")[:300].replace("\n", " ")
    except Exception:
        return str(e.reason or "")


def _retry_after(headers) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):  # an HTTP date: fall back to our own backoff
        return None


def data_url(image: bytes) -> str:
    from emidbench.common.images import image_format

    fmt = image_format(image)
    mime = {"jpg": "jpeg"}.get(fmt, fmt)
    return f"data:image/{mime};base64," + base64.b64encode(image).decode("ascii")
