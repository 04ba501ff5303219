"""The `decoder` family: a causal LM with a sequence-classification head (LLaMA-3.1-8B, say), trained
with LoRA through peft; the head (`score`) is always trained in full and saved (modules_to_save).

- `model.name` (an id or local path, read from the HF cache) or `model.config` (an untrained
  architecture, such as a tiny `llama`, with a byte-level BPE tokenizer trained on the training split).
- A tokenizer without a pad token pads with its eos (else unk) token; config.pad_token_id follows,
  since the head reads the last non-pad token of each row.
- With bf16 or fp16 precision the frozen base is loaded in that dtype; the trainable LoRA and head
  weights stay fp32 and run under autocast.
- load_in_4bit (QLoRA): the base in 4-bit NF4 through bitsandbytes, which must be importable.
- Export "adapter": the adapter (LoRA + head) and the tokenizer; for a config-built base the base
  itself is shipped in `base/`, so the artifact loads offline. Export "merged": the base with the
  adapter merged in, loadable with AutoModelForSequenceClassification alone.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from makam_worker.run_spec import ModelSpec
from makam_worker.training import tokenizer_cache
from makam_worker.training.errors import TrainingError
from makam_worker.training.family import BuildContext, Built, ensure_pad_token, parameter_counts
from makam_worker.training.families.hf_models import (
    attention_notes, enable_gradient_checkpointing, from_config, from_pretrained, tokenizer_settings,
)
from makam_worker.training.model_limits import check_fits, resolve_model_name

BOS, EOS = "<s>", "</s>"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

LOADING_ADAPTER = """\
import json, os
from peft import PeftConfig, PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer
labels = json.load(open(f"{d}/labels.json"))
tokenizer = AutoTokenizer.from_pretrained(d)
base = f"{d}/base" if os.path.isdir(f"{d}/base") else PeftConfig.from_pretrained(d).base_model_name_or_path
model = AutoModelForSequenceClassification.from_pretrained(
    base, num_labels=len(labels), id2label=dict(enumerate(labels)),
    label2id={l: i for i, l in enumerate(labels)}, pad_token_id=tokenizer.pad_token_id)
model = PeftModel.from_pretrained(model, d).eval()
batch = textprep.encode(tokenizer, texts, max_length={max_length}, truncation={truncation}, return_tensors="pt")
predicted = [labels[i] for i in model(**batch).logits.argmax(-1).tolist()]"""

LOADING_MERGED = """\
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(d).eval()
tokenizer = AutoTokenizer.from_pretrained(d)
batch = textprep.encode(tokenizer, texts, max_length={max_length}, truncation={truncation}, return_tensors="pt")
labels = [model.config.id2label[i] for i in model(**batch).logits.argmax(-1).tolist()]"""


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def build(model_spec: ModelSpec, ctx: BuildContext) -> Built:
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    hp, labels = ctx.hp, ctx.splits.label_names
    if hp.load_in_4bit and not bitsandbytes_available():
        raise TrainingError(
            "bitsandbytes_missing",
            "load_in_4bit needs the bitsandbytes package on the worker, which does not have it; "
            "set load_in_4bit to false or run on a worker with bitsandbytes",
            retryable=False,
        )
    dtype = DTYPES[ctx.precision]
    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    base_dir: Path | None = None

    def fits(config: Any) -> None:
        check_fits(config, ctx, family="decoder")

    if model_spec.name:
        name = model_spec.name
        quantization = _quantization(dtype) if hp.load_in_4bit else None
        where = resolve_model_name(name)
        model, tokenizer = from_pretrained(where.location, id2label, label2id, dtype=dtype, quantization_config=quantization,
                                            hub=where.hub, fits=fits)
        source = name
    elif model_spec.config and ctx.resume_dir is not None:
        # A resumed run: the tokenizer and the untrained base its checkpoint carries, not new ones.
        tokenizer = PreTrainedTokenizerFast.from_pretrained(ctx.resume_dir / "tokenizer")
        base_dir = ctx.work_dir / "base"
        shutil.rmtree(base_dir, ignore_errors=True)
        shutil.copytree(ctx.resume_dir / "base", base_dir)
        if hp.load_in_4bit:
            model, _ = from_pretrained(str(base_dir), id2label, label2id, dtype=dtype,
                                        quantization_config=_quantization(dtype), tokenizer=False)
        else:  # loaded in fp32 and cast, as a fresh run casts its fp32 base (buffers such as RoPE's included)
            model, _ = from_pretrained(str(base_dir), id2label, label2id, dtype=torch.float32, tokenizer=False)
            model.to(dtype)
        source = f"untrained {model_spec.config.get('model_type')} built from a config"
    elif model_spec.config:
        tokenizer = cached_byte_bpe(ctx.splits.train_texts, tokenizer_settings(model_spec.tokenizer or {}))
        model = from_config(
            dict(model_spec.config), tokenizer, id2label, label2id, example="llama",
            token_ids={"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}, fits=fits,
        )
        source = f"untrained {model_spec.config.get('model_type')} built from a config"
        # The untrained base is part of the model: save it as it was before training, to ship with an adapter.
        base_dir = ctx.work_dir / "base"
        model.save_pretrained(base_dir)
        if hp.load_in_4bit:
            model, _ = from_pretrained(str(base_dir), id2label, label2id, dtype=dtype,
                                        quantization_config=_quantization(dtype), tokenizer=False)
        else:
            model.to(dtype)
    else:
        raise TrainingError("invalid_model", "the model needs a name (id or local path) or a config", retryable=False)

    notes = ensure_pad_token(tokenizer, model) + attention_notes(model)
    derived = {}
    if base_dir is not None:
        model.config.save_pretrained(base_dir)  # with pad_token_id
        # Both were made from the data and the seed: every checkpoint carries them for a resumed run.
        tokenizer.save_pretrained(ctx.work_dir / "tokenizer")
        derived = {"tokenizer": ctx.work_dir / "tokenizer", "base": base_dir}
    if hp.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hp.gradient_checkpointing:
        enable_gradient_checkpointing(model)
        model.enable_input_require_grads()
    if not hp.load_in_4bit:
        model.to(ctx.device)

    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
        target_modules=list(hp.lora_target_modules), modules_to_save=["score"],
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as e:
        raise TrainingError("invalid_hyperparameters", f"lora_target_modules: {str(e).splitlines()[0]}") from None
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # trainable weights in fp32; autocast runs the matmuls in bf16/fp16

    limit = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
    max_length = min(hp.max_length, limit, tokenizer.model_max_length)
    if max_length < hp.max_length:
        notes.append(f"max_length lowered to the model's limit of {max_length}")

    def save(model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        if hp.export == "merged":
            merged = model.merge_and_unload()
            merged.save_pretrained(model_dir)
        else:
            model.save_pretrained(model_dir)
            config_path = model_dir / "adapter_config.json"
            config = json.loads(config_path.read_text())
            # Never a path on this worker: the hub id, or the base shipped beside the adapter.
            config["base_model_name_or_path"] = "base" if base_dir is not None else source
            config_path.write_text(json.dumps(config, indent=2) + "\n")
            if base_dir is not None:
                shutil.copytree(base_dir, model_dir / "base")
        tokenizer.save_pretrained(model_dir)

    loading = LOADING_MERGED if hp.export == "merged" else LOADING_ADAPTER
    return Built(
        model=model, tokenizer=tokenizer, max_length=max_length, pad_token_id=tokenizer.pad_token_id, save=save,
        source=source, loading=loading.replace("{max_length}", str(max_length)).replace("{truncation}", repr(hp.truncation)), notes=notes,
        info={**parameter_counts(model), "vocab_size": len(tokenizer), "export": hp.export,
              "load_in_4bit": hp.load_in_4bit, "base_dtype": str(dtype).removeprefix("torch.")},
        derived=derived,
    )


def _quantization(compute_dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype if compute_dtype != torch.float32 else torch.bfloat16,
    )


def cached_byte_bpe(texts: list[str], settings: dict[str, int]) -> PreTrainedTokenizerFast:
    """train_byte_bpe, once per texts and settings on a worker (tokenizer_cache.py); always loaded
    from its saved files, so a run gets the same tokenizer whether it was just trained or reused."""
    with tokenizer_cache.cached("byte_bpe", texts, settings,
                                lambda d: train_byte_bpe(texts, settings).save_pretrained(d)) as directory:
        return PreTrainedTokenizerFast.from_pretrained(directory)


def train_byte_bpe(texts: list[str], settings: dict[str, int]) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (as GPT-2 and LLaMA-3 use) with <s> and </s> and no pad token,
    adding <s> in front of each text, as LLaMA's tokenizer does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=settings["vocab_size"], min_frequency=settings["min_frequency"], special_tokens=[BOS, EOS],
        initial_alphabet=sorted(pre_tokenizers.ByteLevel.alphabet()), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS)
