"""`transformers serve` (transformers' own OpenAI-compatible server, fastapi + uvicorn) on
a free 127.0.0.1 port, for tests against a real server.

The server is pinned to one model (its FORCE_MODEL argument, a local folder here): it
loads it at start, lists it alone under GET /v1/models, and answers a request naming any
other model with HTTP 400 ("Server is pinned to ..."). The name clients must send is
that argument as given, so `--model` is the folder path. Starting takes ~10-20 s on a
shared CPU (imports + loading), so tests share one server per session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# The CLI's entry point without its update check (no network in tests).
SERVE = [sys.executable, "-c", "import sys; from transformers.cli.transformers import app; sys.exit(app())", "serve"]
START_TIMEOUT = 600.0  # a safety net for a stuck start, not a speed requirement


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServe:
    def __init__(self, model: str | Path, log_dir: Path, port: int | None = None):
        self.model = str(model)  # the served name: FORCE_MODEL as given
        self.port = port or free_port()
        self.log = Path(log_dir) / f"transformers-serve-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> TransformersServe:
        """Launch (returns at once; `wait_ready` blocks)."""
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(SERVE + [self.model, "--host", "127.0.0.1", "--port", str(self.port),
                                                  "--device", "cpu", "--log-level", "warning"],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self) -> TransformersServe:
        """Until GET /v1/models lists the model (loaded at start when pinned)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=5) as r:
                    if self.model in [m["id"] for m in json.load(r)["data"]]:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"transformers serve did not come up in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would (no graceful shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> TransformersServe:
        """Start again on the same port (after `kill`)."""
        self.kill()
        return self.start().wait_ready()

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""
