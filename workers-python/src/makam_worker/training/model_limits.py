"""What a job's model may be, checked before a byte of it is allocated.

- `model.name` is a Hugging Face id, read only from the Hugging Face cache (never as a path relative to
  the worker's working directory), or an absolute path under one of the operator's model roots
  (MAKAM_MODEL_ROOTS), checked on the normalised path and again after symlinks are resolved. Every
  refused or missing path reads the same, so the answer tells nothing of what exists outside the roots.
- The model is built on PyTorch's meta device (no memory), its parameters counted exactly, and the
  run's training memory estimated as the API's placement does
  (services/api/src/placement/memory-estimate.ts); a run that would not fit the worker's memory
  (MAKAM_WORKER_MEMORY_BYTES, else the device's) fails with `does_not_fit` and the figures.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from makam_worker.training.errors import TrainingError

MODEL_ROOTS_ENV = "MAKAM_MODEL_ROOTS"
MEMORY_ENV = "MAKAM_WORKER_MEMORY_BYTES"
MIB, GIB = 1 << 20, 1 << 30

# huggingface_hub's repo id rules: [org/]name of letters, digits, '-', '_', '.', no '--' or '..', at most 96.
_SEGMENT = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"(?:{_SEGMENT}/)?{_SEGMENT}")


def model_roots(env: Mapping[str, str] | None = None) -> list[str]:
    """The model roots, normalised; ValueError naming the variable for a relative one or one with '..'."""
    env = os.environ if env is None else env
    roots = []
    for raw in env.get(MODEL_ROOTS_ENV, "").split(":"):
        if not raw:
            continue
        if not raw.startswith("/") or ".." in raw.split("/"):
            raise ValueError(f"{MODEL_ROOTS_ENV}: {raw!r} must be an absolute directory without '..'")
        roots.append(os.path.normpath(raw))
    return roots


def memory_limit_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """MAKAM_WORKER_MEMORY_BYTES: the memory a run may plan on; unset, the device's."""
    env = os.environ if env is None else env
    raw = env.get(MEMORY_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{MEMORY_ENV}={raw!r} must be a whole number of bytes, at least 1")
    return int(raw)


def check_settings(env: Mapping[str, str] | None = None) -> None:
    """Raises ValueError naming a bad MAKAM_MODEL_ROOTS or MAKAM_WORKER_MEMORY_BYTES: for the server to stop at start."""
    model_roots(env)
    memory_limit_from_env(env)


def _settings_error(e: ValueError) -> TrainingError:
    return TrainingError("worker_misconfigured", f"this worker's settings are invalid: {e}", retryable=False)


def is_hub_id(name: str) -> bool:
    return len(name) <= 96 and _HUB_ID.fullmatch(name) is not None and "--" not in name and ".." not in name


def _under(path: str, root: str) -> bool:
    return path != root and path.startswith(root if root == "/" else root + "/")


@dataclass(frozen=True)
class ModelSource:
    location: str
    """The hub id, or the real absolute path of the model directory."""
    hub: bool


def resolve_model_name(name: str, roots: list[str] | None = None) -> ModelSource:
    """Where `model.name` is read from; a refused or missing path fails as `model_not_found`, one message for all."""
    if is_hub_id(name):
        return ModelSource(name, hub=True)
    if roots is None:
        try:
            roots = model_roots()
        except ValueError as e:
            raise _settings_error(e) from None
    not_found = TrainingError(
        "model_not_found",
        f"model {name!r} was not found: model.name must be a Hugging Face id in this worker's cache or a model "
        f"directory under its model roots ({MODEL_ROOTS_ENV})",
        retryable=False,
    )
    segments = [s for s in name.split("/") if s]
    if not name.startswith("/") or any(s in (".", "..") for s in segments) or re.search(r"[\x00-\x1f\x7f\\]", name):
        raise not_found
    normal = "/" + "/".join(segments)
    # The normalised path first: nothing outside the roots is ever looked at.
    if not any(_under(normal, root) for root in roots):
        raise not_found
    real = os.path.realpath(normal)  # a symlink inside a root may point out of it (a root may be a symlink itself)
    if not any(_under(real, os.path.realpath(root)) for root in roots) or not os.path.isdir(real):
        raise not_found
    return ModelSource(real, hub=False)


@contextlib.contextmanager
def hub_only() -> Iterator[dict[str, Any]]:
    """Loads a hub id from the cache only: the working directory is an empty one meanwhile, since
    transformers reads an id that names an existing relative directory as that directory."""
    from huggingface_hub import constants

    cache_dir = os.path.abspath(constants.HF_HUB_CACHE)  # a relative HF_HOME still means the worker's cwd
    with tempfile.TemporaryDirectory(prefix="makam-hub-") as empty, contextlib.chdir(empty):
        yield {"cache_dir": cache_dir}


def meta_parameter_count(config: Any) -> int:
    """The parameters AutoModelForSequenceClassification builds from `config`, counted on the meta device."""
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _shape(config: Any) -> dict[str, int]:
    get = lambda *keys: next((int(v) for k in keys if isinstance(v := getattr(config, k, None), (int, float))), 0)  # noqa: E731
    hidden = get("hidden_size", "n_embd", "d_model", "dim")
    heads = get("num_attention_heads", "n_head") or 1
    head_dim = get("head_dim") or hidden // heads
    return {
        "hidden": hidden,
        "layers": get("num_hidden_layers", "n_layer"),
        "heads": heads,
        "kv_heads": get("num_key_value_heads") or heads,
        "head_dim": head_dim,
        "ff": get("intermediate_size", "n_inner") or 4 * hidden,
    }


def _lora_trainable(s: dict[str, int], hp: Any, labels: int) -> int:
    q, kv = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    h, ff = s["hidden"], s["ff"]
    dims = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h), "gate_proj": (h, ff),
            "up_proj": (h, ff), "down_proj": (ff, h), "c_attn": (h, 3 * h), "c_fc": (h, ff), "c_proj": (h + ff, 2 * h)}
    per_layer = sum(hp.lora_r * sum(dims[m]) for m in hp.lora_target_modules if m in dims)
    return s["layers"] * per_layer + h * labels


@dataclass(frozen=True)
class Estimate:
    total_bytes: int
    parameters: int
    trainable_parameters: int
    weights_bytes: int
    activations_bytes: int


def estimate_training_bytes(config: Any, parameters: int, hp: Any, *, family: str, labels: int, precision: str, cuda: bool) -> Estimate:
    """The API's formula (memory-estimate.ts) with the exact parameter count."""
    s = _shape(config)
    half = precision in ("bf16", "fp16")
    four_bit = family == "decoder" and bool(hp.load_in_4bit)
    lora = family == "decoder"
    weight_bytes = 0.5 if four_bit else 2 if lora and half else 4
    trainable = _lora_trainable(s, hp, labels) if lora else parameters
    trainable_bytes = 4 if lora else weight_bytes
    weights = parameters * weight_bytes
    gradients = trainable * trainable_bytes
    optimizer = trainable * 8 + (trainable * 4 if trainable_bytes < 4 else 0)
    b, seq, h = hp.batch_size, hp.max_length, max(s["hidden"], 1)
    a = 2 if half else 4
    flash = half and cuda
    per_layer = b * seq * h * (a / 2) * (34 + (0 if flash else 5 * s["heads"] * seq / h))
    activations = (s["layers"] * b * seq * h * a + per_layer) if hp.gradient_checkpointing else s["layers"] * per_layer
    overhead = 512 * MIB if cuda else 128 * MIB
    total = math.ceil((weights + gradients + optimizer + activations + overhead) * 1.1)
    return Estimate(total, parameters, trainable, math.ceil(weights), math.ceil(activations))


def device_memory(device: Any) -> int:
    try:
        limit = memory_limit_from_env()
    except ValueError as e:
        raise _settings_error(e) from None
    if limit is not None:
        return limit
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(config: Any, ctx: Any, *, family: str) -> Estimate:
    """Counts the model of `config` on the meta device and refuses with `does_not_fit` a run that would
    not fit this worker; `ctx` is the family's BuildContext."""
    try:
        parameters = meta_parameter_count(config)
    except (ValueError, TypeError) as e:
        raise TrainingError("invalid_model_config", f"the model cannot be built from its config: {e}") from None
    estimate = estimate_training_bytes(config, parameters, ctx.hp, family=family, labels=len(ctx.splits.label_names),
                                       precision=ctx.precision, cuda=ctx.device.type == "cuda")
    have = device_memory(ctx.device)
    if estimate.total_bytes > have:
        gib = lambda n: f"{n / GIB:.2f} GiB"  # noqa: E731
        raise TrainingError(
            "does_not_fit",
            f"the model has {parameters:,} parameters and training it needs about {gib(estimate.total_bytes)} "
            f"(weights {gib(estimate.weights_bytes)}, activations {gib(estimate.activations_bytes)}, batch_size "
            f"{ctx.hp.batch_size} x max_length {ctx.hp.max_length}), but this worker has {gib(have)} "
            f"({'MAKAM_WORKER_MEMORY_BYTES' if memory_limit_from_env() is not None else ctx.device.type}); "
            "submit it to a larger resource_class, or lower batch_size or the model's size",
            retryable=False,
        )
    ctx.log.info("model checked on the meta device: %d parameters, about %.2f GiB to train, %.2f GiB available",
                 parameters, estimate.total_bytes / GIB, have / GIB)
    return estimate
