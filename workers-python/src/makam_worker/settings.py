"""The worker's limits, from the environment; a bad value stops the worker and names the variable."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    # Announced sizes above these are refused before a byte is read (a stranger's 2^63-byte header).
    max_dataset_bytes: int = 1 * GIB
    max_checkpoint_bytes: int = 32 * GIB
    # Datasets are a cache: least recently used ones go when a new one would pass this total.
    dataset_cache_bytes: int = 4 * GIB
    # An upload is refused unless the state dir's disk keeps this much free after it.
    min_free_bytes: int = 1 * GIB
    # A finished run nobody fetched or deleted (a dead dispatcher) goes after this long.
    run_retention_s: float = 86400.0

    @property
    def sweep_interval_s(self) -> float:
        return min(300.0, max(0.2, self.run_retention_s / 2))


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not {'a whole number' if integer else 'a number'}") from None
    if not value >= minimum or value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name}={raw!r} must be a finite number of at least {minimum:g}")
    return value


def limits_from_env(env: Mapping[str, str] | None = None) -> Limits:
    env = os.environ if env is None else env
    d = Limits()
    limits = Limits(
        max_dataset_bytes=int(_number(env, "MAKAM_WORKER_MAX_DATASET_BYTES", d.max_dataset_bytes, integer=True, minimum=1)),
        max_checkpoint_bytes=int(_number(env, "MAKAM_WORKER_MAX_CHECKPOINT_BYTES", d.max_checkpoint_bytes, integer=True, minimum=1)),
        dataset_cache_bytes=int(_number(env, "MAKAM_WORKER_DATASET_CACHE_BYTES", d.dataset_cache_bytes, integer=True, minimum=1)),
        min_free_bytes=int(_number(env, "MAKAM_WORKER_MIN_FREE_BYTES", d.min_free_bytes, integer=True, minimum=0)),
        run_retention_s=_number(env, "MAKAM_WORKER_RUN_RETENTION_S", d.run_retention_s, integer=False, minimum=0.1),
    )
    if limits.max_dataset_bytes > limits.dataset_cache_bytes:
        raise ValueError(f"MAKAM_WORKER_MAX_DATASET_BYTES ({limits.max_dataset_bytes}) must not exceed "
                         f"MAKAM_WORKER_DATASET_CACHE_BYTES ({limits.dataset_cache_bytes}): one dataset must fit the cache")
    return limits


def _flag(env: Mapping[str, str] | None, name: str, default: bool) -> bool:
    """A yes/no variable: unset or empty is `default`; anything but 1/true/yes or 0/false/no is refused."""
    raw = (os.environ if env is None else env).get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ValueError(f"{name}={raw!r} must be 1/true or 0/false")


def allow_insecure(env: Mapping[str, str] | None = None) -> bool:
    return _flag(env, "MAKAM_WORKER_ALLOW_INSECURE", default=False)


def warm_process_enabled(env: Mapping[str, str] | None = None) -> bool:
    """MAKAM_WORKER_WARM (default 1): keep a warm training process that runs are forked from (warm.py);
    0 spawns every run cold, paying the imports of torch and transformers each time."""
    return _flag(env, "MAKAM_WORKER_WARM", default=True)


def worker_devices(env: Mapping[str, str] | None = None) -> int | None:
    """MAKAM_WORKER_DEVICES: the devices one run may train on at once (torchrun, training/distributed.py);
    unset: None, which capabilities.py reads as every GPU it sees, else 1. On CPU, N gloo processes."""
    env = os.environ if env is None else env
    if not env.get("MAKAM_WORKER_DEVICES", "").strip():
        return None
    return int(_number(env, "MAKAM_WORKER_DEVICES", 1, integer=True, minimum=1))


def cpu_budget(env: Mapping[str, str] | None = None, cgroup_root: Path = Path("/sys/fs/cgroup")) -> tuple[int, str]:
    """The CPU threads a run may use, and what said so: MAKAM_WORKER_CPUS, else OMP_NUM_THREADS when the
    worker's environment sets it (OpenMP's own variable, as benches and tests do), else the cgroup's CPU
    quota (a container's --cpus), else the CPUs this process may run on (taskset, cpuset). Two workers
    on one host each given their share keep torch, OpenMP and BLAS from oversubscribing it."""
    env = os.environ if env is None else env
    if env.get("MAKAM_WORKER_CPUS", "").strip():
        return int(_number(env, "MAKAM_WORKER_CPUS", 0, integer=True, minimum=1)), "MAKAM_WORKER_CPUS"
    if env.get("OMP_NUM_THREADS", "").strip():  # "4,2" sets nested levels: the outer one is the run's
        outer = {"OMP_NUM_THREADS": env["OMP_NUM_THREADS"].split(",")[0]}
        return int(_number(outer, "OMP_NUM_THREADS", 0, integer=True, minimum=1)), "OMP_NUM_THREADS"
    available = len(os.sched_getaffinity(0))
    quota = _cgroup_cpu_quota(cgroup_root)
    if quota is not None and quota < available:
        return quota, "the cgroup's CPU quota"
    return available, "the CPUs this process may run on"


def _cgroup_cpu_quota(root: Path) -> int | None:
    """The CPU quota in whole CPUs (rounded up), from cgroup v2's cpu.max or v1's cfs files; None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def is_loopback(address: str) -> bool:
    """True when a gRPC listen address is reachable only from this machine (loopback or a unix socket)."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rpartition(":")[0] if ":" in address else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a wildcard, a host name or an interface's address: reachable from elsewhere
