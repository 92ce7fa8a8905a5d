"""The chat-completions client shared by the openai eval backend and the openai judge,
on the official `openai` Python client (its connection pool, time-outs and retries).

What the official client does: one pooled HTTP connection per request in flight; a
time-out per request (--timeout); up to --retries retries of 408/409/429/5xx answers,
time-outs and dropped connections, waiting 0.5 s, 1 s, 2 s, ... (at most 8 s, minus up to
25 % jitter) or what the server's Retry-After / retry-after-ms asks (up to 120 s).

What we add on top:
- the key comes only from the environment variable named by --api-key-env (never from
  OPENAI_API_KEY behind the user's back, nor OPENAI_ORG_ID / OPENAI_PROJECT_ID /
  OPENAI_BASE_URL) and is never written anywhere: not to RUN, not to logs, not into
  error messages (a server echoing it back is scrubbed);
- errors no retry fixes stop the run with one line (UserError): 401/403 (the key),
  404 or a model the server says it does not serve (the URL or --model), a server that
  refuses connections or does not resolve;
- everything else that fails after the retries is that item's failure (RuntimeError,
  recorded by the caller and asked again on the next run): a 400 about the item, a
  time-out, a torn response, an answer without choices or with an empty message.
- `concurrency` requests in flight is the callers' thread pool (the client is
  thread-safe and pools connections).

Keys: the official OpenAI endpoint and Azure need one, so an unset variable stops at
once (one line naming it). Any other --base-url (vLLM, SGLang, Ollama, transformers
serve, ... on your machine) is asked without a key when the variable is unset; if that
server wants one, its 401 names the variable.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from emidbench.common.errors import UserError, did_you_mean, exception_chain

DEFAULT_BASE_URL = "https://api.openai.com/v1"
API_TYPES = ("openai", "azure")


@dataclass(frozen=True)
class ChatOptions:
    """How to reach the server beyond its URL and key (`eval.api` / `score.judge_api` in a
    run config; --api-type, --api-version, --organization, --header, --timeout, --retries
    on the command line)."""

    api_type: str = "openai"  # or azure: Azure OpenAI (--base-url is the resource endpoint)
    api_version: str | None = None  # Azure's api-version query parameter (required there)
    organization: str | None = None  # OpenAI-Organization header
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # extra headers, e.g. for a gateway
    timeout: float = 120.0  # seconds per request
    retries: int = 6  # retries of 429/5xx/time-outs/dropped connections, by the official client

    KEYS = ("api_type", "api_version", "organization", "headers", "timeout", "retries")

    @classmethod
    def parse(cls, value, where: str = "api options") -> ChatOptions:
        """From a mapping (a run config section, or the CLI's options); bad values are one
        line naming `where` and the key."""
        if value is None:
            return cls()
        if isinstance(value, ChatOptions):
            return value
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping of {', '.join(cls.KEYS)}")
        for k in value:
            if k not in cls.KEYS:
                raise UserError(f"{where}: unknown key {k!r}{did_you_mean(k, cls.KEYS)} (known: {', '.join(cls.KEYS)})")
        api_type = str(value.get("api_type") or "openai").lower()
        if api_type not in API_TYPES:
            raise UserError(f"{where}: api_type {api_type!r} is not one of {', '.join(API_TYPES)}")
        headers = value.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(k, str) and k.strip() for k in headers):
            raise UserError(f"{where}: headers must be a mapping of header name to value")
        timeout, retries = value.get("timeout", 120.0), value.get("retries", 6)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise UserError(f"{where}: timeout must be a positive number of seconds (got {timeout!r})")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise UserError(f"{where}: retries must be 0 or a positive integer (got {retries!r})")
        version = value.get("api_version")
        if api_type == "azure" and not version:
            raise UserError(f"{where}: Azure OpenAI needs an api_version (--api-version), e.g. 2024-10-21")
        org = value.get("organization")
        return cls(api_type, str(version) if version else None, str(org) if org else None,
                   tuple(sorted((k.strip(), str(v)) for k, v in headers.items())), float(timeout), retries)

    def record(self) -> dict:
        """For eval.json / score.json: header names only (a gateway's header may be a secret)."""
        return {"api_type": self.api_type, "api_version": self.api_version, "organization": self.organization,
                "headers": [k for k, _ in self.headers], "timeout": self.timeout, "retries": self.retries}


class ServerUnreachable(UserError):
    """The server refuses connections or its name does not resolve: no item can be answered.
    Exit code 2, or 1 when the caller already got answers in this run (set by the caller)."""


def check_base_url(url: str, option: str = "--base-url") -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{option} {url!r} is not a URL: expected http(s)://HOST[:PORT]/v1, "
                        "e.g. http://127.0.0.1:8000/v1")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise UserError(f"{option} {url!r} is not a URL: its port is not a number") from None
    return url.strip().rstrip("/")


class ChatClient:
    """One chat-completions endpoint. Shared by the eval backend and the OpenAI judge."""

    def __init__(self, base_url: str | None, api_key_env: str = "OPENAI_API_KEY",
                 options: ChatOptions | None = None, option_prefix: str = "--", model_option: str = "--model"):
        import openai

        self.options = options or ChatOptions()
        self.prefix = option_prefix
        self.model_option = model_option
        self.api_key_env = api_key_env
        azure = self.options.api_type == "azure"
        if azure and not base_url:
            raise UserError(f"{option_prefix}api-type azure needs {option_prefix}base-url: your resource's "
                            "endpoint, e.g. https://NAME.openai.azure.com")
        self.base_url = check_base_url(base_url or DEFAULT_BASE_URL, f"{option_prefix}base-url")
        self._key = os.environ.get(api_key_env, "")
        if not self._key and (azure or urlsplit(self.base_url).hostname == urlsplit(DEFAULT_BASE_URL).hostname):
            raise UserError(f"${api_key_env} is not set: {self.base_url} needs an API key in it "
                            f"(or name another variable with {option_prefix}api-key-env)")
        # No key: no Authorization header at all (the client wants that said on each request).
        self._extra = {"Authorization": openai.Omit()} if not self._key else None
        common = {"api_key": self._key, "organization": self.options.organization, "project": None,
                  "timeout": self.options.timeout, "max_retries": self.options.retries,
                  "default_headers": dict(self.options.headers) or None}
        if azure:  # the model name is the deployment: .../openai/deployments/{model}/chat/completions
            client = openai.AzureOpenAI(azure_endpoint=self.base_url, api_version=self.options.api_version,
                                        **common)
        else:  # an empty key: no Authorization header (a local server); the client would refuse it
            client = openai.OpenAI(base_url=self.base_url, _enforce_credentials=False, **common)
        # The constructor fills unset ones from OPENAI_ORG_ID / OPENAI_PROJECT_ID: only what was asked.
        client.organization = self.options.organization
        client.project = None
        self._client = client
        self._reached = False  # the server was seen up (checked once, before the first request)
        self._served: list[str] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the key
        return f"ChatClient({self.url!r}, api_key_env={self.api_key_env!r})"

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def complete(self, body: dict) -> str:
        """The first choice's message text.

        Raises UserError for what no retry fixes, RuntimeError for this item's failure."""
        import openai

        self._check_up()
        model = body.get("model", "")
        try:
            resp = self._client.chat.completions.create(**body, extra_headers=self._extra)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            why = "is not set" if not self._key else "was rejected"
            raise UserError(f"{self.url}: HTTP {e.status_code} (check the key in ${self.api_key_env}: it {why}): "
                            f"{self._detail(e)}") from None
        except openai.NotFoundError as e:
            raise UserError(f"{self.url}: HTTP 404 (wrong {self.prefix}base-url or model name {model!r}): "
                            f"{self._detail(e)}") from None
        except openai.APITimeoutError:
            raise RuntimeError(f"timed out after {self.options.retries + 1} tries ({self.prefix}timeout "
                               f"{self.options.timeout:g} s)") from None
        except openai.APIConnectionError as e:
            if _refused(e):
                raise ServerUnreachable(f"cannot connect to {self.base_url} ({_root_reason(e)}); is the server "
                                        f"running? check {self.prefix}base-url") from None
            raise RuntimeError(f"connection lost or response torn after {self.options.retries + 1} tries "
                               f"({self._scrub(_root_reason(e))})") from None
        except openai.APIStatusError as e:
            if e.status_code in (400, 422) or e.status_code >= 500:
                self._check_served(model)  # a model the server does not have: stop, not N failed items
            raise RuntimeError(f"HTTP {e.status_code}: {self._detail(e)}") from None
        except (openai.APIResponseValidationError, ValueError) as e:  # a 200 whose body is not a completion
            raise RuntimeError(f"malformed response ({type(e).__name__}: {self._scrub(str(e))[:200]})") from None
        return self._text(resp)

    def _check_up(self) -> None:
        """Before the first request: a server that is down (connection refused, a name that
        does not resolve) is one line at once, not --retries rounds of backoff per item.
        Later, a refused connection goes through the retries first (a server restarting)."""
        with self._lock:
            if self._reached:
                return
            parts = urlsplit(self.base_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if not _proxied(self.base_url):
                try:
                    socket.create_connection((parts.hostname, port), timeout=min(self.options.timeout, 10.0)).close()
                except (ConnectionRefusedError, socket.gaierror) as e:
                    raise ServerUnreachable(f"cannot connect to {self.base_url} ({type(e).__name__}: "
                                            f"{' '.join(str(e).split())[:120]}); is the server running? check "
                                            f"{self.prefix}base-url") from None
                except OSError:  # a time-out or an unreachable network: the client's retries decide
                    pass
            self._reached = True

    def _text(self, resp) -> str:
        choices = getattr(resp, "choices", None)
        if not isinstance(choices, list):
            raise RuntimeError(f"malformed response (not a chat completion): {self._scrub(str(resp))[:200]}")
        if not choices:
            raise RuntimeError("the server answered without choices")
        message = choices[0].message
        content = getattr(message, "content", None) if message is not None else None
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not content or not str(content).strip():
            reason = getattr(choices[0], "finish_reason", None)
            raise RuntimeError(f"the server answered with an empty message (finish_reason {reason!r})")
        return str(content)

    def _detail(self, e) -> str:
        body = getattr(e, "body", None)
        msg = body.get("message") or body.get("detail") or body if isinstance(body, dict) else (body or e.message)
        if isinstance(msg, dict):
            msg = msg.get("message", msg)
        return self._scrub(" ".join(str(msg).split()))[:300]

    def _check_served(self, model: str) -> None:
        """Stop with one line when the server lists its models and `model` is not among them
        (transformers serve pinned to a model answers 400, some servers 500, others 404)."""
        if self.options.api_type == "azure" or not model:
            return
        with self._lock:
            if self._served is None:
                try:
                    self._served = [m.id for m in self._client.models.list(extra_headers=self._extra)]
                except Exception:  # a server without GET /models: nothing to compare with
                    self._served = []
        if self._served and model not in self._served:
            raise UserError(f"{self.base_url} does not serve model {model!r}{did_you_mean(model, self._served)}; "
                            f"it serves: {', '.join(self._served[:5])} (pass {self.model_option} as the server names it)")


def _proxied(url: str) -> bool:
    """Whether requests to `url` go through a proxy (then a direct connection proves nothing)."""
    import urllib.request

    host = urlsplit(url).hostname or ""
    proxies = urllib.request.getproxies()
    return bool(proxies.get(urlsplit(url).scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host)


def _refused(e: BaseException) -> bool:
    """The connection was never made: refused, or the host name does not resolve."""
    return any(isinstance(c, (ConnectionRefusedError, socket.gaierror)) or type(c).__name__ == "ConnectError"
               for c in exception_chain(e))


def _root_reason(e: BaseException) -> str:
    last = None
    for c in exception_chain(e):
        last = c
    return f"{type(last).__name__}: {' '.join(str(last).split())[:120]}" if last is not None else type(e).__name__


def data_url(image: bytes) -> str:
    from emidbench.common.images import image_format

    fmt = image_format(image)
    mime = {"jpg": "jpeg"}.get(fmt, fmt)
    return f"data:image/{mime};base64," + base64.b64encode(image).decode("ascii")
