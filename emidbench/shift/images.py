"""The shift stage's image work: each distinct (image, corruption, severity) job computed
once, in this process or in N-1 spawned workers, stored as PNG in the content-hash store,
and recorded in RUN/shifts/.images.jsonl so a rerun redoes only what is missing."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass

from emidbench.common.images import decode_image
from emidbench.common.io import JsonlAppender, iter_jsonl, jsonl_line, write_if_changed
from emidbench.rundir import RunDir
from emidbench.shift.visual import corrupt_image, fast_png

IMAGE_INDEX = ".images.jsonl"
JOBS_PER_TASK = 8  # corruptions of one source image sent to a worker together (decoded once)


@dataclass(frozen=True)
class ImageJob:
    source: str  # content hash of the source image
    corruption: str
    severity: int
    seed: int

    @property
    def key(self) -> tuple:
        return (self.source, self.corruption, self.severity, self.seed)


def corrupt_and_store(images_root: str, data: bytes, jobs: list[tuple[str, int, int]]) -> list[str]:
    """Decode one source image, apply each (corruption, severity, seed), store each result
    as PNG in the content-hash store; the stored names. Module-level: worker processes run it.

    Encoding and writing run on a helper thread, overlapped with the next corruption
    (zlib, hashing and fsync release the GIL). The thread touches no random state, so
    the global-RNG seeding of the corruptions on this thread stays exact."""
    import numpy as np

    run = RunDir(images_root)
    arr = np.asarray(decode_image(data, "image"))
    with ThreadPoolExecutor(max_workers=1) as writer:
        stored = [writer.submit(_store_png, run, corrupt_image(arr, name, severity, seed))
                  for name, severity, seed in jobs]
    return [f.result() for f in stored]


def _store_png(run: RunDir, arr) -> str:
    return run.put_image(fast_png(arr), "png")


class ImageIndex:
    """RUN/shifts/.images.jsonl: finished image jobs, appended as they finish."""

    def __init__(self, run: RunDir, intact=None):
        self.run = run
        self.intact = intact or run.image_intact  # name -> bool (shared with ShiftProgress: hashed once)
        self.path = run.shifts / IMAGE_INDEX
        self.done: dict[tuple, str] = {}
        if self.path.exists():
            for _, rec in iter_jsonl(self.path, allow_torn_tail=True):
                key = (rec.get("source"), rec.get("corruption"), rec.get("severity"), rec.get("seed"))
                self.done[key] = str(rec.get("image"))
        self._out: JsonlAppender | None = None

    def stored(self, job: ImageJob) -> str | None:
        """The job's image, if it was made before and the file is intact (its name is its hash)."""
        name = self.done.get(job.key)
        return name if name is not None and self.intact(name) else None

    def add(self, jobs: list[ImageJob], names: list[str]) -> None:
        if self._out is None:
            self._out = JsonlAppender(self.path)
        self._out.write({"source": j.source, "corruption": j.corruption, "severity": j.severity, "seed": j.seed,
                         "image": n} for j, n in zip(jobs, names))
        for j, n in zip(jobs, names):
            self.done[j.key] = n

    def close(self) -> None:
        """Rewrite the index in a fixed order, so a finished run's files do not depend on
        the order in which workers finished."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if not self.done:
            return
        text = "".join(jsonl_line({"source": k[0], "corruption": k[1], "severity": k[2], "seed": k[3], "image": v})
                       for k, v in sorted(self.done.items(), key=lambda kv: str(kv[0])))
        write_if_changed(self.path, text.encode("utf-8"))


class ImageWork:
    """Compute the missing image jobs. workers=1: here, in order. workers=N>1: N-1 spawned
    processes start on them at once (`start`) while this process makes the questions; then
    this process joins in (`finish`), taking tasks from the back of the queue while the
    workers take them from the front, so N processes share the image work.

    Source images are read when their task runs or is sent to a worker, never all at once:
    a feeder thread keeps at most QUEUED_PER_WORKER tasks per worker in the pool (the stage
    holds a few images per process whatever the benchmark's size; its samples hold refs,
    not bytes). The feeder is a thread of its own so that the workers stay fed while this
    process's main thread is busy elsewhere (the question texts are one long step)."""

    QUEUED_PER_WORKER = 3

    def __init__(self, run: RunDir, index: ImageIndex, todo: dict[str, list[ImageJob]], sources: dict,
                 workers: int, console):
        """sources: content hash -> a sample with that image (benchmarks.base.Sample)."""
        self.run, self.index, self.workers, self.console = run, index, workers, console
        # tasks: up to JOBS_PER_TASK jobs of one source image, in a fixed order
        self.tasks = deque((src, jobs[i:i + JOBS_PER_TASK]) for src, jobs in sorted(todo.items())
                           for i in range(0, len(jobs), JOBS_PER_TASK))
        self.sources = sources
        self.total = sum(len(j) for _, j in self.tasks)
        self.pool = None
        self.lock = threading.Lock()  # guards tasks and queued (the feeder thread and this one)
        self.queued: dict = {}  # future -> its jobs, sent to the pool and not yet collected
        self.slots: threading.Semaphore | None = None
        self.feeder: threading.Thread | None = None
        self.feed_error: BaseException | None = None
        self.stopping = False
        self.progress = None
        self.bar = None

    def _arguments(self, src: str, jobs: list[ImageJob]) -> tuple:
        return (str(self.run.root), self.sources[src].read_image(), [(j.corruption, j.severity, j.seed) for j in jobs])

    def _run_here(self, src: str, jobs: list[ImageJob]) -> None:
        self.index.add(jobs, corrupt_and_store(*self._arguments(src, jobs)))
        self._advance(len(jobs))

    def _advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.bar, n)

    def _take(self, front: bool):
        with self.lock:
            if not self.tasks or self.stopping:
                return None
            return self.tasks.popleft() if front else self.tasks.pop()

    def start(self) -> None:
        if not self.tasks:
            return
        if self.console is not None:
            from emidbench.common.progress import make_progress

            self.progress = make_progress(self.console, unit="images")
            self.bar = self.progress.add_task("corrupting images", total=self.total)
            self.progress.start()
        if self.workers > 1 and len(self.tasks) > 1:
            import multiprocessing as mp

            # spawn: safe on every platform and with threads (torch, rich) in this process
            n = min(self.workers - 1, len(self.tasks) - 1)
            self.pool = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"))
            self.slots = threading.Semaphore(n * self.QUEUED_PER_WORKER)
            self.feeder = threading.Thread(target=self._feed, name="emidbench-image-feeder", daemon=True)
            self.feeder.start()

    def _feed(self) -> None:
        """Send tasks from the front of the queue while fewer than the window wait."""
        try:
            while True:
                self.slots.acquire()
                task = self._take(front=True)
                if task is None:
                    return
                src, jobs = task
                fut = self.pool.submit(corrupt_and_store, *self._arguments(src, jobs))
                with self.lock:
                    self.queued[fut] = jobs
                fut.add_done_callback(lambda f, n=len(jobs): (self.slots.release(), f.cancelled() or self._advance(n)))
        except BaseException as e:  # re-raised by finish() on the stage's thread
            self.feed_error = e

    def _collect(self, futures) -> None:
        for fut in futures:
            with self.lock:
                jobs = self.queued.pop(fut)
            self.index.add(jobs, fut.result())

    def finish(self, between=lambda: None) -> None:
        """Run or wait for the image tasks; call `between()` after each one run here."""
        try:
            if self.pool is None:
                while self.tasks:
                    self._run_here(*self.tasks.popleft())
                    between()
                return
            while (task := self._take(front=False)) is not None:  # help from the back of the queue
                self._run_here(*task)
                between()
                with self.lock:
                    done = [f for f in self.queued if f.done()]
                self._collect(done)
            self.feeder.join()
            if self.feed_error is not None:
                raise self.feed_error
            while self.queued:
                with self.lock:
                    pending = list(self.queued)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                self._collect(done)
        finally:
            if self.pool is not None:
                with self.lock:
                    self.stopping = True
                self.slots.release()  # a feeder waiting for a slot wakes, sees `stopping` and ends
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.feeder.join()
            if self.progress is not None:
                self.progress.stop()


def image_jobs(todo, selected: dict, seed: int, index: ImageIndex) -> tuple[dict, dict, dict]:
    """The distinct image jobs of the scenarios still to write. -> (every job by (source,
    corruption, severity); the jobs not stored by an earlier run, by source; a sample of
    each of their sources, to read its image from when its task runs)."""
    from emidbench.common.hashing import derive_seed

    job_of: dict[tuple, ImageJob] = {}
    missing: dict[str, list[ImageJob]] = {}
    sources: dict = {}
    for p in todo:
        if p.visual is None:
            continue
        for s in selected[p.name]:
            h = s.image_hash
            if (h, p.visual.name, p.visual.severity) in job_of:
                continue
            job = ImageJob(h, p.visual.name, p.visual.severity, derive_seed(seed, h, p.visual.name, p.visual.severity))
            job_of[(h, p.visual.name, p.visual.severity)] = job
            if index.stored(job) is None:
                sources[h] = s
                missing.setdefault(h, []).append(job)
    return job_of, missing, sources
