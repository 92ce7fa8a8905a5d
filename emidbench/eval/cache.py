"""Content-addressed JSON caches: the response cache of the eval stage, and the store
under it that the score stage's judge cache (RUN/cache/judge/) uses as well.

EntryCache: one JSON object per key at ROOT/<key[:2]>/<key>.json, each written
atomically, so a killed process leaves whole entries only. An entry that is absent,
unreadable, not JSON (torn, truncated, not UTF-8), not an object, or that its owner's
check rejects is a MISS, never an error: the caller computes it again and put()
overwrites it.

The response cache: one answer per distinct request, shared by every scenario (and every
model name) of a run. A request is identified by sha256 over
    the model identity   backend + model (hub id@revision, or a content hash of a local
                         checkpoint) + dtype (+ hf outside fp32: the batch size, as a padded
                         half-precision batch can change a greedy answer; vllm: tensor-parallel
                         size) — see each backend's `identity`
    the image            sha256 of its bytes (not its file name)
    the prompt           exactly what the model is shown (the chat template's rendering)
    the settings         max_new_tokens, temperature, system prompt
    the examples         an ICL request's example images (sha256 each, in order; their
                         questions and answers are part of the prompt)
so the ID set that two scenario families share, or a scenario evaluated under a second
--name, is generated once. Failed requests are not cached (they are retried).
Layout: RUN/cache/responses/<key[:2]>/<key>.json = {"text", "prompt"}.

The judge cache (score/stage.py): RUN/cache/judge/<key[:2]>/<key>.json =
{"reply", "judge"}, keyed by the judge's identity and the exact messages; an entry whose
reply does not parse is a miss.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from emidbench.common.cache import EntryCache


def request_key(identity: str, image_sha256: str, prompt: str, settings: dict,
                examples: list[str] | None = None) -> str:
    """`examples`: the in-context examples' image hashes, in order (their questions and
    answers are in the prompt); absent from the key of a request without examples."""
    body = {"model": identity, "image": image_sha256, "prompt": prompt, "settings": settings}
    if examples:
        body["examples"] = list(examples)
    payload = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache(EntryCache):
    """The eval stage's answers: {"text", "prompt"} per request key."""

    def __init__(self, root: Path):
        super().__init__(root, valid=lambda entry: isinstance(entry.get("text"), str))

    def put(self, key: str, text: str, prompt: str) -> None:
        super().put(key, {"text": text, "prompt": prompt})
