"""The content-addressed response cache: one answer per distinct request, shared by every
scenario (and every model name) of a run.

A request is identified by sha256 over
    the model identity   backend + model (hub id@revision, or a content hash of a local
                         checkpoint) + dtype — see each backend's `identity`
    the image            sha256 of its bytes (not its file name)
    the prompt           exactly what the model is shown (the chat template's rendering)
    the settings         max_new_tokens, temperature, system prompt
so the ID set that two scenario families share, or a scenario evaluated under a second
--name, is generated once. Failed requests are not cached (they are retried).

Layout: RUN/cache/responses/<key[:2]>/<key>.json = {"text", "prompt"}, each written
atomically, so a killed process leaves whole entries only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from emidbench.errors import UserError
from emidbench.rundir import atomic_write_json, read_json


def request_key(identity: str, image_sha256: str, prompt: str, settings: dict) -> str:
    payload = json.dumps({"model": identity, "image": image_sha256, "prompt": prompt, "settings": settings},
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            entry = read_json(path)
        except UserError:  # a damaged entry is a miss, not a failure
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            return None
        return entry

    def put(self, key: str, text: str, prompt: str) -> None:
        atomic_write_json(self._path(key), {"text": text, "prompt": prompt})

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
