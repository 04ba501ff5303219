"""Hugging Face models for the neural families (encoder and decoder): loading one by name, building
an untrained one from a config, the `model.tokenizer` settings of a config-built model, and
gradient checkpointing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from makam_worker.training.errors import TrainingError
from makam_worker.training.model_limits import hub_only

TOKENIZER_DEFAULTS: dict[str, int] = {"vocab_size": 2000, "min_frequency": 0}


def with_sdpa(load: Callable[..., PreTrainedModel]) -> PreTrainedModel:
    """`load(**kwargs)` asking for SDPA attention (torch's fused kernels: flash or memory-efficient on
    CUDA), or, for a model type transformers has no SDPA attention for, eager attention; the
    family logs that through `attention_notes`."""
    try:
        return load(attn_implementation="sdpa")
    except (ValueError, ImportError) as e:
        if "scaled_dot_product_attention" not in str(e) and "sdpa" not in str(e).lower():
            raise
        return load(attn_implementation="eager")  # explicit: the first try left "sdpa" in a passed config


def attention_notes(model: Any) -> list[str]:
    """A note for the run's log when the model does not use SDPA attention (see with_sdpa)."""
    config = getattr(model, "config", None)
    implementation = getattr(config, "_attn_implementation", None)
    if implementation in (None, "sdpa"):
        return []
    return [f"attention: {implementation}, not sdpa (transformers has no SDPA attention for "
            f"{getattr(config, 'model_type', 'this model')}): slower and more memory at long max_length"]


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    try:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    except ValueError as e:
        raise TrainingError("invalid_hyperparameters", f"gradient_checkpointing: {e}; set it to false") from None


def from_pretrained(
    name: str, id2label: dict[int, str], label2id: dict[str, int], *, dtype: Any = None,
    quantization_config: Any = None, tokenizer: bool = True, hub: bool = False,
    fits: Callable[[PretrainedConfig], Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """`name` is a hub id (`hub`) or a path already confined by resolve_model_name, or the run's own directory."""
    from huggingface_hub.errors import HFValidationError

    extra = {k: v for k, v in (("dtype", dtype), ("quantization_config", quantization_config)) if v is not None}
    labels = {"num_labels": len(id2label), "id2label": id2label, "label2id": label2id}
    try:
        with hub_only() if hub else contextlib.nullcontext({}) as where:
            loaded = AutoTokenizer.from_pretrained(name, **where) if tokenizer else None
            if fits is not None:
                fits(AutoConfig.from_pretrained(name, **labels, **where))
            model = with_sdpa(lambda **attention: AutoModelForSequenceClassification.from_pretrained(
                name,
                **labels,
                ignore_mismatched_sizes=True,  # a checkpoint fine-tuned on other labels gets a fresh head
                **extra,
                **where,
                **attention,
            ))
    except (OSError, HFValidationError) as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "0")
        raise TrainingError(
            "model_not_found",
            f"model {name!r} was not found as a local path or in the Hugging Face cache "
            f"(HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}, HF_HUB_OFFLINE={offline}): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
            retryable=False,
        ) from None
    return model, loaded


def from_config(
    config: dict[str, Any], tokenizer: PreTrainedTokenizerBase, id2label: dict[int, str], label2id: dict[str, int],
    *, example: str = "bert", token_ids: dict[str, Any] | None = None, fits: Callable[[PretrainedConfig], Any] | None = None,
) -> PreTrainedModel:
    """An untrained model from `config` (`model_type` plus its fields); shared by the encoder and
    decoder families, which differ in the example type named in errors and the token ids they set."""
    model_type = config.pop("model_type", None)
    if not isinstance(model_type, str) or not model_type:
        raise TrainingError("invalid_model_config", f"model.config needs a 'model_type', such as '{example}'")
    try:
        defaults = AutoConfig.for_model(model_type)
    except ValueError:
        raise TrainingError("invalid_model_config", f"unknown model_type {model_type!r}; try '{example}'") from None
    fields = {key: _like_default(getattr(defaults, key, None), value) for key, value in config.items()}
    # The trained tokenizer fixes the vocabulary and the special tokens, whatever the config said.
    fields.update(
        vocab_size=len(tokenizer),
        **(token_ids if token_ids is not None else {"pad_token_id": tokenizer.pad_token_id}),
        num_labels=len(id2label),
        id2label=id2label,
        label2id=label2id,
    )
    try:
        built = AutoConfig.for_model(model_type, **fields)
        if fits is not None:
            fits(built)
        model = with_sdpa(lambda **attention: AutoModelForSequenceClassification.from_config(built, **attention))
    except (ValueError, TypeError) as e:
        raise TrainingError("invalid_model_config", f"model.config is not a valid {model_type} config: {e}") from None
    limit = getattr(built, "max_position_embeddings", None)
    if isinstance(limit, int):
        tokenizer.model_max_length = limit
    return model


def _like_default(default: Any, value: Any) -> Any:
    """protobuf Struct numbers are floats: 32.0 becomes 32 where the config expects an int."""
    if isinstance(value, float) and value.is_integer() and (isinstance(default, int) or default is None):
        return int(value)
    return value


def tokenizer_settings(settings: dict[str, Any]) -> dict[str, int]:
    unknown = sorted(set(settings) - set(TOKENIZER_DEFAULTS))
    if unknown:
        raise TrainingError(
            "invalid_model_config",
            f"unknown tokenizer setting {unknown[0]!r}; use {', '.join(sorted(TOKENIZER_DEFAULTS))}",
        )
    merged = {**TOKENIZER_DEFAULTS, **settings}
    for key, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
            raise TrainingError("invalid_model_config", f"tokenizer.{key} must be a whole number >= 0 (got {value!r})")
        merged[key] = int(value)
    if merged["vocab_size"] < 100:
        raise TrainingError("invalid_model_config", f"tokenizer.vocab_size must be at least 100 (got {merged['vocab_size']})")
    return merged
