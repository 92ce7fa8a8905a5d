"""Scale-out over processes started by torchrun / accelerate launch, and the merge of
answer files.

    torchrun --nproc_per_node=4 -m emidbench eval RUN --model M          # 4 GPUs, one host
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=R \\
             --rdzv_backend=c10d --rdzv_endpoint=HOST0:29500 -m emidbench eval RUN --model M
    accelerate launch --num_processes=4 -m emidbench eval RUN --model M

The launcher sets RANK, WORLD_SIZE and LOCAL_RANK. Rank r takes the distinct pending
requests i (in scenario order, then question order) with i % WORLD_SIZE == r, runs on
cuda:LOCAL_RANK (or the CPU), and appends its answers to its own shard
RUN/responses/<model>/.shards/<scenario>.rank<r>.jsonl. After a barrier, rank 0 merges the
shards into the per-scenario files in question order. Every rank sees the same RUN:
over several hosts, RUN must be on a shared file system. Greedy answers do not depend
on which rank or batch produced them, so the result equals a single-process run.

Coordination (barriers, gathering the counts) uses torch.distributed: gloo on CPU, nccl
on GPU; a process group the caller already set up (e.g. under accelerate) is reused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from emidbench.common.errors import UserError

# Ranks wait for each other at the end; cache hits can make shards very unequal in work.
TIMEOUT = timedelta(hours=24)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer") from None


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def from_env(cls) -> "Dist":
        world = _env_int("WORLD_SIZE", 1)
        if world <= 1:
            return cls()
        import torch
        import torch.distributed as dist

        # Before the group exists: its functions bind `group=group.WORLD` as defaults at import.
        # Imported later (transformers does, via torch.distributed.fsdp) they would hold our group,
        # destroy_process_group could not free it, and its gloo worker threads would still be
        # retiring the last collective while the interpreter exits: an abort at teardown.
        import torch.distributed.nn  # noqa: F401

        local_rank = _env_int("LOCAL_RANK", 0)
        owns = False
        if not dist.is_initialized():
            kwargs = {}
            if torch.cuda.is_available():
                torch.cuda.set_device(local_rank)
                kwargs = {"backend": "nccl", "device_id": torch.device("cuda", local_rank)}
            else:
                kwargs = {"backend": "gloo"}
            dist.init_process_group(timeout=TIMEOUT, **kwargs)
            owns = True
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, owns)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def all_gather(self, obj) -> list:
        if self.world <= 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self, sync: bool = True) -> None:
        """Tear down the process group we created. sync: wait for every rank first (a rank
        that tears down while a peer still talks to it can abort it); not after an error,
        when a peer may never arrive."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                if sync:
                    dist.barrier()
                dist.destroy_process_group()
            self.owns_group = False


def take_shard(items: list, dist: Dist) -> list:
    """Items i with i % world == rank: deterministic, balanced, independent of timing."""
    return items[dist.rank::dist.world]


def shard_path(responses_dir: Path, scenario: str, rank: int) -> Path:
    return responses_dir / ".shards" / f"{scenario}.rank{rank}.jsonl"


def shard_paths(responses_dir: Path, scenario: str) -> list[Path]:
    folder = responses_dir / ".shards"
    if not folder.is_dir():
        return []
    prefix = f"{scenario}.rank"
    return sorted(p for p in folder.iterdir()
                  if p.name.startswith(prefix) and p.name.endswith(".jsonl") and p.name[len(prefix):-6].isdigit())
