"""One run on several devices of a node, on PyTorch's own launcher and DDP.

A run whose spec asks for `devices` > 1 is started (process.py) as
`python -m torch.distributed.run --standalone --nproc-per-node=N -m makam_worker.training.child <run_dir>`:
torchrun starts one rank per device, gives them a rendezvous, and with its default max_restarts=0 stops
every rank and exits non-zero as soon as one fails. The worker watches torchrun as it watches a single
training process, so a rank's death is a worker fault (worker_crashed, retryable) and the dispatcher's
retry resumes from the last checkpoint; a cancel's SIGTERM to torchrun's group reaches torchrun, which
forwards it to every rank (each in a session of its own) and waits for them.

Inside a rank:
- `setup()` joins the process group (NCCL for CUDA tensors, gloo for CPU ones) and binds the rank to its
  device; every rank seeds as a single process does, so each builds the same model.
- batch_size is PER DEVICE: one optimizer step takes batch_size x gradient_accumulation_steps x devices
  examples. `Shard` cuts the single-process order of batches of batch_size x devices (length-grouped
  alike) so that the ranks' batches at step k together are that batch, and `global_denominator` makes
  each rank's loss a share of the whole step's loss (DDP averages gradients): the same global batch
  gives the same loss curve as one process (tests/test_distributed.py).
- Rank 0 is the run: it writes events, checkpoints and the artifact into the run dir. The other ranks
  run the same code with their writes sent to `ranks/<rank>/` of the run dir (`rank_paths`), never read.
- Every rank evaluates the whole validation and test split with the same weights (no communication),
  so the metrics are the single-process ones.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

from makam_worker.layout import RunPaths

# A rank blocked in a collective whose peer is gone fails after this long at worst (gloo raises at once
# when the peer's socket closes; torchrun also stops every rank when one dies).
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
PR_SET_PDEATHSIG = 1


def launch_command(run_dir: Path, devices: int) -> list[str]:
    """torchrun for `devices` ranks on this node (standalone: a rendezvous on a free local port)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}",
            "--monitor-interval=0.2", "-m", "makam_worker.training.child", str(run_dir)]


def launched() -> bool:
    """True in a rank that torchrun started for a run of several devices."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def setup() -> None:
    """Joins the run's process group; a no-op outside torchrun."""
    if not launched():
        return
    _die_with_parent()
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    cuda = torch.cuda.is_available() and not os.environ.get("MAKAM_WORKER_DEVICE", "").startswith("cpu")
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # trainer.pick_device's "cuda" is this one
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)


def _die_with_parent() -> None:
    """torchrun puts each rank in a session of its own: if torchrun is SIGKILLed (the worker's cancel
    after its grace period), its group signal misses the ranks, so each asks Linux to kill it then."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # torchrun died before the request took effect
            os._exit(1)


@dataclass(frozen=True)
class RankPaths(RunPaths):
    """A rank other than 0: reads the run's spec and resume.tar, writes under ranks/<rank>/."""

    run_dir: Path = Path()

    @property
    def spec(self) -> Path:
        return RunPaths(self.run_dir).spec

    @property
    def resume(self) -> Path:
        return RunPaths(self.run_dir).resume


def rank_paths(run_dir: Path) -> RunPaths:
    r = int(os.environ.get("RANK", "0")) if launched() else 0
    if r == 0:
        return RunPaths(run_dir)
    own = run_dir / "ranks" / str(r)
    own.mkdir(parents=True, exist_ok=True)
    return RankPaths(own, run_dir)


def lost_a_peer(error: BaseException, stop_requested: bool) -> bool:
    """True when a rank's error comes from the run stopping around it (a peer died, or torchrun is
    stopping every rank), not from the training itself: the rank then exits without a `finished`
    event and the worker records the run's end (worker_crashed, retryable; or the cancel)."""
    if not launched():
        return False
    if stop_requested:
        return True
    import torch.distributed as dist

    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(s in text for s in ("gloo", "nccl", "connection", "peer"))


def agreed(check_stop: Callable[[], None]) -> Callable[[], None]:
    """`check_stop` that every rank of a run of several devices answers alike: each asks its own flag,
    and all stop if any was asked to. torchrun's SIGTERM reaches the ranks at slightly different moments;
    a rank that stopped alone would leave the other blocked in the next step's collective, to fail there
    instead of stopping (tests/test_distributed.py). Every rank calls it at the same points (the loops
    are the same code); rank 0's own work after the others are done uses `alone(check)`."""
    if world_size() == 1:
        return check_stop
    import torch
    import torch.distributed as dist

    from makam_worker.training.errors import Cancelled

    def check() -> None:
        try:
            check_stop()
            mine = 0.0
        except Cancelled:
            mine = 1.0
        flag = torch.tensor([mine], dtype=torch.float64)  # a CPU tensor: gloo, never a GPU sync
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            raise Cancelled()

    check.alone = check_stop  # type: ignore[attr-defined]
    return check


def alone(check_stop: Callable[[], None]) -> Callable[[], None]:
    """The rank's own `check_stop` behind an `agreed` one, for work no other rank joins."""
    return getattr(check_stop, "alone", check_stop)


# --- data --------------------------------------------------------------------------------------


class Shard:
    """This rank's part of a sampler's order: padded (repeating its start, as torch's
    DistributedSampler does) to a multiple of the world size, then every world-th index from the rank
    on, so the ranks' batch k together is the single-process batch k of batch_size x world."""

    def __init__(self, sampler: Any, rank_: int, world: int) -> None:
        self.sampler, self.rank, self.world = sampler, rank_, world

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.world)

    def __iter__(self) -> Iterator[int]:
        order = list(self.sampler)
        if order:
            order += (order * self.world)[: -len(order) % self.world]
        return iter(order[self.rank::self.world])


def shard(sampler: Any) -> Any:
    world = world_size()
    return sampler if world == 1 else Shard(sampler, rank(), world)


# --- the step ------------------------------------------------------------------------------------


def wrap(model: Any, device: Any) -> Any:
    """The model the training step runs: DDP over it in a run of several devices (for a decoder, over
    the LoRA model: only the adapters and the head have gradients to reduce), else the model itself.
    Checkpoints, evaluation and the artifact keep using the model, not the wrapper."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else __import__("torch").cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def replicas(model: Any) -> int:
    """How many ranks average this model's gradients: the world size under DDP, else 1."""
    from torch.nn.parallel import DistributedDataParallel

    return world_size() if isinstance(model, DistributedDataParallel) else 1


def global_denominator(model: Any, denominator: float) -> float:
    """The loss denominator of the whole step (every rank's micro-batches); each rank divides its own
    numerator by it, and DDP's mean over ranks is undone by the caller's factor `replicas(model)`."""
    if replicas(model) == 1:
        return denominator
    import torch
    import torch.distributed as dist

    total = torch.tensor([denominator], dtype=torch.float64)  # a CPU tensor: gloo, never a GPU sync
    dist.all_reduce(total)
    return float(total)


def global_loss(model: Any, loss: Any) -> Any:
    """The step's loss over every rank (each holds its share of it)."""
    if replicas(model) == 1:
        return loss
    import torch.distributed as dist

    dist.all_reduce(loss)
    return loss


def global_throughput(report: dict[str, Any]) -> dict[str, Any]:
    """A Meter report for the whole run: every rank's samples and tokens over rank 0's seconds, and
    the devices. Every rank calls it at the same point (a collective)."""
    world = world_size()
    if world == 1:
        return report
    import torch
    import torch.distributed as dist

    counts = torch.tensor([report["samples"], report["tokens"]], dtype=torch.float64)
    dist.all_reduce(counts)
    samples, tokens = (int(c) for c in counts.tolist())
    seconds = report["seconds"]
    return {**report, "samples": samples, "tokens": tokens, "devices": world,
            "samples_per_second": samples / seconds if seconds > 0 else 0.0,
            "tokens_per_second": tokens / seconds if seconds > 0 else 0.0}
