"""The hyperparameters of a run, checked again here as the worker's own guard.

The API validates requests first and fills every default for the job's family; this module applies
the same defaults when a key is absent, so `{}` is a valid request for every family. A key that does
not apply to the family (a LoRA rank for `tfidf`, say) is refused, naming the family it belongs to.

This module must stay importable without torch: the server uses it to refuse bad hyperparameters at
StartRun before a child process is spawned.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

FAMILIES = ("encoder", "decoder", "scratch", "tfidf")
NEURAL = ("encoder", "decoder", "scratch")
ALL = FAMILIES

LEARNING_RATE = {"encoder": 5e-5, "decoder": 1e-4, "scratch": 5e-4}
MAX_LENGTH = {"encoder": 128, "decoder": 256, "scratch": 256}
LOWERCASE = {"encoder": "none", "decoder": "none", "scratch": "turkish", "tfidf": "turkish"}
METRICS = ("macro_f1", "accuracy", "weighted_f1", "validation_loss")

LabelWeights = dict[str, float]


def _hp(default: Any, families: tuple[str, ...], *, kind: Any = None, choices: tuple[str, ...] = ()) -> Any:
    """A field: its default, the families it applies to, its JSON kind and, for strings, its choices."""
    factory = {"default_factory": (lambda: list(default))} if isinstance(default, list) else {"default": default}
    return field(**factory, metadata={"families": families, "kind": kind, "choices": choices})


@dataclass(frozen=True)
class Hyperparameters:
    """How to train one run of one family; see the README's table for every key and its default.

    Defaults marked "per family" are None here and resolved in `__post_init__` from `family`.
    """

    family: str = field(default="encoder", metadata={"families": ALL, "kind": "internal"})
    """The model family the run trains: encoder, decoder, scratch or tfidf (from model.family, not a key)."""

    # --- common to the neural families ---
    epochs: int = _hp(3, NEURAL, kind=int)
    """Passes over the training split (1-1000); early stopping may end sooner."""
    batch_size: int = _hp(16, NEURAL, kind=int)
    """Examples per forward pass (1-4096); an optimizer step sees batch_size x gradient_accumulation_steps."""
    learning_rate: float | None = _hp(None, NEURAL, kind=float)
    """Peak AdamW learning rate after warmup (above 0, at most 1); per family: encoder 5e-5, decoder 1e-4, scratch 5e-4."""
    max_length: int | None = _hp(None, NEURAL, kind=int)
    """Tokens per example after truncation, special tokens included (8-512); per family: encoder 128, decoder and scratch 256."""
    warmup_ratio: float = _hp(0.1, NEURAL, kind=float)
    """Share of the optimizer steps spent warming the learning rate up from 0 (0 to below 1)."""
    warmup_steps: int = _hp(0, NEURAL, kind=int)
    """Warmup in optimizer steps; above 0 it overrides warmup_ratio."""
    lr_scheduler: str = _hp("linear", NEURAL, kind=str, choices=("linear", "cosine", "constant"))
    """The decay after warmup: linear to 0, cosine to 0, or constant."""
    weight_decay: float = _hp(0.01, NEURAL, kind=float)
    """AdamW weight decay (0-1), never applied to biases and normalisation weights."""
    max_grad_norm: float = _hp(1.0, NEURAL, kind=float)
    """Gradients are clipped to this total norm; 0 disables clipping."""
    gradient_accumulation_steps: int = _hp(1, NEURAL, kind=int)
    """Micro-batches summed into one optimizer step (1-1024); the loss is normalised over all of them."""
    precision: str = _hp("auto", NEURAL, kind=str, choices=("auto", "fp32", "bf16", "fp16"))
    """auto: bf16 on CUDA that supports it, else fp32; fp16 uses a gradient scaler and needs CUDA."""
    label_smoothing: float = _hp(0.0, NEURAL, kind=float)
    """Share of the target mass spread evenly over all labels (0 to below 1)."""
    loss: str = _hp("cross_entropy", NEURAL, kind=str, choices=("cross_entropy", "focal"))
    """The training loss: cross_entropy, or focal: alpha_y * (1 - p_y)^gamma * cross_entropy."""
    focal_gamma: float = _hp(2.0, NEURAL, kind=float)
    """Focal loss exponent (0-10); 0 makes focal loss cross-entropy."""
    focal_alpha: LabelWeights | None = _hp(None, NEURAL, kind="label_weights")
    """Focal loss weight per label name ({label: weight}, 0-1000); labels left out weigh 1; null weighs all 1."""
    class_weights: LabelWeights | str | None = _hp(None, NEURAL, kind="class_weights")
    """null, "balanced" (n / (labels x count), from the training split) or {label: weight} (0-1000; others weigh 1)."""
    early_stopping_patience: int = _hp(0, NEURAL, kind=int)
    """Epochs without improvement of metric_for_best_model before training stops; 0 turns it off."""
    metric_for_best_model: str = _hp("macro_f1", NEURAL, kind=str, choices=METRICS)
    """The validation metric that picks the best epoch (whose weights are evaluated and exported)."""
    truncation: str = _hp("head", NEURAL, kind=str, choices=("head", "tail", "head+tail"))
    """Which tokens a long text keeps: the first, the last, or both (a quarter head, the rest tail)."""

    # --- encoder and decoder ---
    gradient_checkpointing: bool = _hp(False, ("encoder", "decoder"), kind=bool)
    """Recompute activations in the backward pass: less memory, about a third more time."""

    # --- decoder (LoRA) ---
    lora_r: int = _hp(16, ("decoder",), kind=int)
    """LoRA rank (1-1024)."""
    lora_alpha: float = _hp(32, ("decoder",), kind=float)
    """LoRA scaling numerator: the update is scaled by lora_alpha / lora_r (above 0, at most 4096)."""
    lora_dropout: float = _hp(0.05, ("decoder",), kind=float)
    """Dropout on the LoRA input (0 to below 1)."""
    lora_target_modules: list[str] = _hp(["q_proj", "k_proj", "v_proj", "o_proj"], ("decoder",), kind=list)
    """Names of the linear layers that get LoRA adapters; the classification head is always trained in full."""
    load_in_4bit: bool = _hp(False, ("decoder",), kind=bool)
    """QLoRA: the frozen base in 4-bit NF4 (needs CUDA and bitsandbytes on the worker)."""
    export: str = _hp("adapter", ("decoder",), kind=str, choices=("adapter", "merged"))
    """The artifact: the LoRA adapter (with the head), or the base with the adapter merged in."""

    # --- scratch ---
    layers: int = _hp(4, ("scratch",), kind=int)
    """Transformer blocks (1-48)."""
    heads: int = _hp(4, ("scratch",), kind=int)
    """Attention heads per block (1-64); d_model must divide by it."""
    d_model: int = _hp(256, ("scratch",), kind=int)
    """Width of the token vectors (8-4096)."""
    ff_dim: int = _hp(1024, ("scratch",), kind=int)
    """Width of each block's feed-forward layer (8-16384)."""
    dropout: float = _hp(0.1, ("scratch",), kind=float)
    """Dropout on the embeddings, each block's attention and feed-forward outputs, and the head (0 to below 1)."""
    vocab_size: int = _hp(8000, ("scratch",), kind=int)
    """SentencePiece vocabulary size, special tokens included (100-1000000); a soft limit on small data."""
    tokenizer_model: str = _hp("bpe", ("scratch",), kind=str, choices=("bpe", "unigram"))
    """The SentencePiece algorithm: bpe or unigram."""
    pooling: str = _hp("mean", ("scratch",), kind=str, choices=("mean", "cls"))
    """How a text's token vectors become one: their mean over real tokens, or the first ([CLS]) token."""

    # --- tfidf ---
    word_ngram_max: int = _hp(2, ("tfidf",), kind=int)
    """Word n-grams from 1 to this (1-5)."""
    char_ngram_min: int = _hp(2, ("tfidf",), kind=int)
    """Shortest character n-gram within word boundaries (char_wb) (1-10)."""
    char_ngram_max: int = _hp(5, ("tfidf",), kind=int)
    """Longest character n-gram (char_ngram_min-10)."""
    C: float = _hp(1.0, ("tfidf",), kind=float)
    """Inverse regularisation strength of the linear classifier (above 0)."""
    classifier: str = _hp("linear_svc", ("tfidf",), kind=str, choices=("linear_svc", "logreg"))
    """LinearSVC or LogisticRegression."""
    max_features: int | None = _hp(None, ("tfidf",), kind="optional_int")
    """Keep only the most frequent n-grams of each vectorizer (word, char); null keeps all."""

    # --- data, for every family ---
    seed: int = _hp(42, ALL, kind=int)
    """Seeds Python, NumPy, torch, the shuffling and the carved splits (0 to 2**32-1)."""
    validation_fraction: float = _hp(0.1, ALL, kind=float)
    """Share of the data held out for validation when no validation dataset is given (above 0, at most 0.5)."""
    test_fraction: float = _hp(0.0, ALL, kind=float)
    """Share held out as a stratified test split when no test dataset is given (0-0.5; 0: none)."""
    remove_eval_duplicates: bool = _hp(True, ALL, kind=bool)
    """Remove validation and test texts that also occur in training (always counted in data.leaks)."""
    unicode_nfc: bool = _hp(True, ALL, kind=bool)
    """Normalise texts to Unicode NFC (composed letters)."""
    lowercase: str | None = _hp(None, ALL, kind=str, choices=("none", "turkish"))
    """turkish: I->ı and İ->i, then lower(); per family: turkish for scratch and tfidf, none for encoder and decoder."""
    unescape_newlines: bool = _hp(True, ALL, kind=bool)
    """Turn literal \\r\\n, \\n, \\t and backslash-escaped quotes (a leading \\' artefact) into real characters."""
    drop_chord_lines: bool = _hp(False, ALL, kind=bool)
    """Drop lines made only of chord names (Am, Dm, C#m7, G/B, Fmaj7)."""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; use one of {', '.join(FAMILIES)}")
        for name, per_family in (("learning_rate", LEARNING_RATE), ("max_length", MAX_LENGTH), ("lowercase", LOWERCASE)):
            if getattr(self, name) is None and self.family in per_family:
                object.__setattr__(self, name, per_family[self.family])
        for f in dataclasses.fields(self):
            if f.metadata.get("choices") and getattr(self, f.name) is not None and getattr(self, f.name) not in f.metadata["choices"]:
                raise ValueError(
                    f"{f.name} must be one of {', '.join(map(repr, f.metadata['choices']))} (got {getattr(self, f.name)!r})"
                )
        _check_range("epochs", self.epochs, 1, 1000)
        _check_range("batch_size", self.batch_size, 1, 4096)
        if self.max_length is not None:
            _check_range("max_length", self.max_length, 8, 512)
        _check_range("seed", self.seed, 0, 2**32 - 1)
        _check_range("warmup_steps", self.warmup_steps, 0, 10_000_000)
        _check_range("gradient_accumulation_steps", self.gradient_accumulation_steps, 1, 1024)
        _check_range("early_stopping_patience", self.early_stopping_patience, 0, 1000)
        if self.learning_rate is not None and not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must be above 0 and at most 1 (got {self.learning_rate}); try 5e-5")
        _check_fraction("warmup_ratio", self.warmup_ratio, "0.1")
        _check_fraction("label_smoothing", self.label_smoothing, "0.1")
        _check_fraction("lora_dropout", self.lora_dropout, "0.05")
        _check_fraction("dropout", self.dropout, "0.1")
        if not 0 <= self.weight_decay <= 1:
            raise ValueError(f"weight_decay must be from 0 to 1 (got {self.weight_decay}); try 0.01")
        if not self.max_grad_norm >= 0:
            raise ValueError(f"max_grad_norm must be 0 (no clipping) or above (got {self.max_grad_norm}); try 1.0")
        if not 0 <= self.focal_gamma <= 10:
            raise ValueError(f"focal_gamma must be from 0 to 10 (got {self.focal_gamma}); try 2.0")
        if not 0 < self.validation_fraction <= 0.5:
            raise ValueError(
                f"validation_fraction must be above 0 and at most 0.5 (got {self.validation_fraction}); try 0.1"
            )
        if not 0 <= self.test_fraction <= 0.5:
            raise ValueError(f"test_fraction must be from 0 to 0.5 (got {self.test_fraction}); try 0.1, or 0 for none")
        if self.validation_fraction + self.test_fraction > 0.8:
            raise ValueError("validation_fraction + test_fraction must be at most 0.8, to leave data to train on")
        _check_range("lora_r", self.lora_r, 1, 1024)
        if not 0 < self.lora_alpha <= 4096:
            raise ValueError(f"lora_alpha must be above 0 and at most 4096 (got {self.lora_alpha}); try 2 x lora_r")
        if not self.lora_target_modules:
            raise ValueError('lora_target_modules must name at least one module, such as ["q_proj", "v_proj"]')
        _check_range("layers", self.layers, 1, 48)
        _check_range("heads", self.heads, 1, 64)
        _check_range("d_model", self.d_model, 8, 4096)
        _check_range("ff_dim", self.ff_dim, 8, 16384)
        _check_range("vocab_size", self.vocab_size, 100, 1_000_000)
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must divide by heads ({self.heads}); try d_model {self.heads * 64}")
        _check_range("word_ngram_max", self.word_ngram_max, 1, 5)
        _check_range("char_ngram_min", self.char_ngram_min, 1, 10)
        _check_range("char_ngram_max", self.char_ngram_max, self.char_ngram_min, 10)
        if not self.C > 0:
            raise ValueError(f"C must be above 0 (got {self.C}); try 1.0")
        if self.max_features is not None:
            _check_range("max_features", self.max_features, 1, 100_000_000)
        for name in ("focal_alpha", "class_weights"):
            value = getattr(self, name)
            if isinstance(value, dict):
                for label, weight in value.items():
                    if not 0 <= weight <= 1000:
                        raise ValueError(f"{name}[{label!r}] must be from 0 to 1000 (got {weight})")
                if not any(value.values()):
                    raise ValueError(f"{name} gives every label weight 0; give at least one a weight above 0")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], family: str = "encoder") -> "Hyperparameters":
        """Builds from JSON values for one family; ints may arrive as integral floats (3.0) from a
        protobuf Struct. Raises ValueError naming the key and the fix."""
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r}; use one of {', '.join(FAMILIES)}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("kind") != "internal"}
        for name in sorted(values):
            if name not in fields:
                usable = sorted(n for n, f in fields.items() if family in f.metadata["families"])
                raise ValueError(f"unknown hyperparameter {name!r}; remove it or use one of: {', '.join(usable)}")
            families = fields[name].metadata["families"]
            if family not in families:
                raise ValueError(
                    f"hyperparameter {name!r} applies to the {_names(families)} {'family' if len(families) == 1 else 'families'}"
                    f", not {family}; remove it"
                )
        kwargs = {name: _coerce(name, fields[name].metadata["kind"], value) for name, value in values.items()}
        return cls(family=family, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The keys that apply to this family, with the values used (defaults filled)."""
        return {
            f.name: _copy(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.metadata.get("kind") != "internal" and self.family in f.metadata["families"]
        }

    def label_weights(self, name: str, label_names: list[str]) -> LabelWeights | None:
        """focal_alpha or an explicit class_weights map checked against the run's labels."""
        value = getattr(self, name)
        if not isinstance(value, dict):
            return None
        unknown = sorted(set(value) - set(label_names))
        if unknown:
            raise ValueError(
                f"{name} names label(s) not in the training data: {', '.join(map(repr, unknown[:5]))}; "
                f"the labels are {', '.join(map(repr, label_names))}"
            )
        return dict(value)


def _names(families: tuple[str, ...]) -> str:
    return families[0] if len(families) == 1 else ", ".join(families[:-1]) + " and " + families[-1]


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if kind in (int, float):
        return _number(name, kind, value)
    if kind == "optional_int":
        return None if value is None else _number(name, int, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false (got {type(value).__name__} {value!r})")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string (got {type(value).__name__} {value!r})")
        return value
    if kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f'{name} must be a list of module names, such as ["q_proj", "v_proj"] (got {value!r})')
        return list(value)
    if kind == "label_weights":
        return None if value is None else _label_weights(name, value)
    if kind == "class_weights":
        if value is None or value == "balanced":
            return value
        if isinstance(value, str):
            raise ValueError(f'{name} must be null, "balanced" or {{label: weight}} (got {value!r})')
        return _label_weights(name, value)
    raise AssertionError(f"no coercion for {name}")  # a field without a kind is a programming error


def _label_weights(name: str, value: Any) -> LabelWeights:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f'{name} must be an object of label names to weights, such as {{"pop": 2.0}} (got {value!r})')
    return {str(label): _number(f"{name}[{label!r}]", float, weight) for label, weight in value.items()}


def _number(name: str, type_: Any, value: Any) -> int | float:
    # bool is an int subclass in Python; true/false is never a meaningful number here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number (got {type(value).__name__} {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number (got {value})")
    if type_ is int:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number (got {value}); round it, e.g. {int(value)}")
        return int(value)
    return float(value)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high} (got {value})")


def _check_fraction(name: str, value: float, example: str) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be from 0 to below 1 (got {value}); try {example}")


def main(argv: list[str] | None = None) -> int:
    """`python -m makam_worker.training.config FAMILY`: the defaults of FAMILY as JSON (for contract tests)."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in FAMILIES:
        print(f"usage: python -m makam_worker.training.config {{{'|'.join(FAMILIES)}}}", file=sys.stderr)
        return 2
    print(json.dumps(Hyperparameters.from_dict({}, args[0]).to_dict(), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
