"""Reaching the Hugging Face hub: one decision shared by everything that loads a hub id
(the hf model backend and judges, the `paper` embedder's encoders, `datasets` benchmarks).

Before a library is asked for a hub id, `prepare(repo_id)` decides how:

- an offline variable is set (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE; for datasets
  HF_DATASETS_OFFLINE, which wins over the others as it does in `datasets`): local only,
  no network at all;
- otherwise a TCP connect to the endpoint (HF_ENDPOINT, default https://huggingface.co;
  to the proxy when HTTPS_PROXY / ALL_PROXY applies), PROBE_TIMEOUT seconds at most, once
  per process: reachable -> the library loads as usual;
- unreachable -> a copy in the local Hugging Face cache loads without the network; anything
  else fails at once with one line (instead of huggingface_hub's retries: ~25 s and a dozen
  lines on stderr). A name close to a bundled one gets "did you mean '...'?".
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from emidbench.common.errors import UserError, did_you_mean

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT = 3.0  # seconds, name lookup included
PROBE_TTL = 60.0  # a probe's answer is reused this long (a run loads several files and ids)
_TRUE = {"1", "ON", "YES", "TRUE"}
_probes: dict[tuple[str, int], tuple[float, bool]] = {}

LOCAL_HINT = {"model": "a folder saved with save_pretrained",
              "dataset": "a save_to_disk folder or a downloaded copy"}


def offline_variable(repo_type: str = "model") -> str | None:
    """The variable that puts the libraries offline for `repo_type`, or None (read as
    huggingface_hub and datasets read it)."""
    env = os.environ
    if repo_type == "dataset" and env.get("HF_DATASETS_OFFLINE") is not None:
        return "HF_DATASETS_OFFLINE" if env["HF_DATASETS_OFFLINE"].upper() in _TRUE else None
    var = "HF_HUB_OFFLINE" if env.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE"
    return var if (env.get(var) or "").upper() in _TRUE else None


def endpoint() -> str:
    try:
        from huggingface_hub import constants

        return constants.ENDPOINT
    except ImportError:
        return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _probe_target(url: str) -> tuple[str, int] | None:
    """(host, port) a connection to `url` opens first: the proxy when one applies."""
    import urllib.request

    parts = urlsplit(url)
    if not parts.hostname:
        return None
    scheme = parts.scheme or "https"
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass_environment(parts.hostname):
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            default = {"https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080}.get(p.scheme, 80)
            try:
                return p.hostname, p.port or default
            except ValueError:
                return None
    try:
        return parts.hostname, parts.port or (80 if scheme == "http" else 443)
    except ValueError:  # a malformed port: let the library say what is wrong
        return None


def reachable(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to the hub endpoint opens within `timeout` seconds (the name
    lookup counts: it runs in a thread, so a hanging resolver cannot stall us)."""
    target = _probe_target(url or endpoint())
    if target is None:
        return True
    hit = _probes.get(target)
    if hit and time.monotonic() - hit[0] < PROBE_TTL:
        return hit[1]
    answer: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(target, timeout=timeout):
                answer.append(True)
        except (OSError, ValueError):
            answer.append(False)

    thread = threading.Thread(target=connect, name="emidbench-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    ok = bool(answer and answer[0])
    _probes[target] = (time.monotonic(), ok)
    return ok


def cached_snapshot(repo_id: str, repo_type: str = "model") -> Path | None:
    """The folder of `repo_id`'s snapshot in the Hugging Face hub cache, or None (no network)."""
    try:
        from huggingface_hub import snapshot_download

        with _quiet_hub():
            return Path(snapshot_download(repo_id, repo_type=repo_type, local_files_only=True))
    except Exception:  # not cached, not a valid id, no huggingface_hub: not in the cache
        return None


def _in_datasets_cache(repo_id: str) -> bool:
    """`datasets`' own cache of a prepared hub dataset (what it loads offline)."""
    try:
        from datasets import config
        from datasets.naming import camelcase_to_snakecase
    except ImportError:
        return False
    parts = repo_id.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = Path(os.path.expanduser(str(config.HF_DATASETS_CACHE))) / "___".join(parts)
    return any(p.is_dir() for p in root.glob("*/*/*"))


def in_cache(repo_id: str, repo_type: str = "model") -> bool:
    if cached_snapshot(repo_id, repo_type) is not None:
        return True
    return repo_type == "dataset" and _in_datasets_cache(repo_id)


def not_reachable(repo_id: str, *, repo_type: str = "model", known=(), why: str | None = None) -> UserError:
    """The one line for a hub id that cannot be loaded for want of the hub. why: the offline
    variable that is set, "unreachable" (the probe failed), or None (the download failed)."""
    hint = did_you_mean(repo_id, known)
    local = LOCAL_HINT.get(repo_type, LOCAL_HINT["model"])
    url = endpoint()
    at = "" if url.rstrip("/") == DEFAULT_ENDPOINT else f" at {url}"
    if why == "unreachable":
        return UserError(f"cannot reach the Hugging Face hub{at} for {repo_id}{hint}, and it is not in the local "
                         f"Hugging Face cache; pass a local path ({local}), or download it where the hub is "
                         "reachable")
    if why:
        return UserError(f"cannot reach the Hugging Face hub for {repo_id}{hint}: {why} is set and it is not in the "
                         f"local cache; pass a local path ({local}) or download it where the hub is reachable")
    return UserError(f"cannot reach the Hugging Face hub{at} for {repo_id}{hint}; pass a local path ({local}), or "
                     "set HF_HUB_OFFLINE=1 to use a copy already in your Hugging Face cache")


def prepare(repo_id: str, *, repo_type: str = "model", known=()) -> str | None:
    """Call before a library loads the hub id `repo_id`. Returns None to load as usual, or the
    reason to load from the local cache only (an offline variable's name, or "unreachable").
    Raises the one-line UserError when the hub is out of reach and `repo_id` is not cached.
    known: the bundled names a typo is matched against."""
    var = offline_variable(repo_type)
    if var:
        return var  # the library itself is offline: it reads the cache or fails at once
    if reachable():
        return None
    if in_cache(repo_id, repo_type):
        return "unreachable"
    raise not_reachable(repo_id, repo_type=repo_type, known=known, why="unreachable")


@contextlib.contextmanager
def offline(datasets_too: bool = False):
    """huggingface_hub (and `datasets`) in offline mode for the duration, as HF_HUB_OFFLINE=1
    would have put them: no request, no retry; what is cached loads."""
    from huggingface_hub import constants

    saved = [(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)]
    if datasets_too:
        from datasets import config

        saved += [(config, name, getattr(config, name)) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")]
    try:
        for module, name, _ in saved:
            setattr(module, name, True)
        with _quiet_hub(datasets_too):
            yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


@contextlib.contextmanager
def _quiet_hub(datasets_too: bool = False):
    """No warnings from huggingface_hub / datasets ("Using the latest cached version ...")."""
    loggers = []
    with contextlib.suppress(ImportError):
        from huggingface_hub.utils import logging as hub_logging

        loggers.append(hub_logging)
    if datasets_too:
        with contextlib.suppress(ImportError):
            from datasets.utils import logging as ds_logging

            loggers.append(ds_logging)
    levels = [(lg, lg.get_verbosity()) for lg in loggers]
    try:
        for lg in loggers:
            lg.set_verbosity_error()
        yield
    finally:
        for lg, level in levels:
            lg.set_verbosity(level)
