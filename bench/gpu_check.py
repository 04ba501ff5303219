"""A few minutes on a CUDA machine: the worker's training step in steady state, its encoder and decoder
paths at real sizes, and how much of a batch is padding.

steady: the worker's own step (trainer.train_step: model_inputs, the loss terms, clipping, fused AdamW on
   CUDA, the schedule) on models built from configs over random full-length token ids, timed over
   --steps steps (default 100) after --warmup steps (default 10), with the device synchronised at both
   ends: samples/s, tokens/s and an MFU estimate (model FLOPs, PaLM's count: 6N + 12·L·h·s per token
   for full fine-tuning, 4N + 12·L·h·s for a frozen base under LoRA, recomputation not counted, against
   the card's dense bf16 peak, or --peak-tflops), peak reserved memory (the worker's step alone), and the
   same batches through a hand-written PyTorch loop (the floor) for the ratio, the two alternating for
   two rounds with the best of each kept. BERT-base at 512 tokens, batch 16; the small
   LLaMA below with LoRA r=16; on CUDA a LLaMA-3.1-8B-shaped decoder (random weights built in bf16 on
   the GPU, no download) with LoRA r=16 on q/k/v/o and gradient checkpointing, batch 4 x 512 tokens.
padding: padded vs real tokens of one epoch of the training split of TTC-3600 and lyrics-tr (../shared/data,
   read in place) at 128 and 512 tokens, with fixed padding, dynamic padding (each batch to its longest
   text, rounded up to 8 as on CUDA) and length-grouped dynamic padding, through the worker's own loader
   and a WordPiece tokenizer trained on the training split; no model, any machine.
runs: every run goes through the worker's training child (makam_worker.training.child.execute), on synthetic
data written to a temporary directory, and reads samples/s, tokens/s and peak memory from the
run's own final_metrics.throughput (torch.cuda.max_memory_allocated), plus the allocator's peak
reserved memory read here after each run.

1. encoder: a BERT-base-sized model built from a config (12 layers, 768 wide, 12 heads, vocabulary
   ~32k from a WordPiece trained on the synthetic texts) at 512 tokens in bf16, batch 16;
2. the same with batch 8 x 4 accumulation steps and gradient checkpointing: does it fit 4 GB?
3. decoder: a small LLaMA-shaped config (hidden 1024, 12 layers, 16 heads, 4 KV heads) with LoRA
   r=16 on q/k/v/o, bf16 base, at 512 tokens, batch 8, and again with gradient checkpointing
   (that one exported merged).

    PYTHONPATH=workers-python/src python3 bench/gpu_check.py            # on the GPU machine: steady + runs
    PYTHONPATH=workers-python/src python3 bench/gpu_check.py --smoke    # tiny sizes, any machine
    workers-python/.venv/bin/python bench/gpu_check.py --device cpu --smoke --only steady
    workers-python/.venv/bin/python bench/gpu_check.py --only padding   # the padding report (CPU)

Needs torch with CUDA, transformers, peft, tokenizers, scikit-learn; not the worker's venv.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workers-python" / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GIB = 1024**3
LETTERS = "abcçdefgğhıijklmnoöprsştuüvyz"
BERT_BASE = {"model_type": "bert", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "max_position_embeddings": 512}
SMALL_LLAMA = {"model_type": "llama", "hidden_size": 1024, "num_hidden_layers": 12, "num_attention_heads": 16,
               "num_key_value_heads": 4, "intermediate_size": 2816, "max_position_embeddings": 2048}
TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 512}
TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "intermediate_size": 64, "max_position_embeddings": 512}


def synthetic(n: int, words_per_text: int, vocabulary: int, labels: int, seed: int) -> list[dict[str, str]]:
    """Texts of Zipf-distributed random Turkish-looking words; each label favours its own words."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 10))) for _ in range(vocabulary)]
    weights = [1 / (rank + 1) for rank in range(vocabulary)]
    rows = []
    for i in range(n):
        label = i % labels
        marked = [words[(label * 997 + k * 31) % vocabulary] for k in range(20)]
        text = rng.choices(words, weights=weights, k=words_per_text)
        for position in rng.sample(range(words_per_text), k=min(10, words_per_text)):
            text[position] = rng.choice(marked)
        rows.append({"text": " ".join(text), "label": f"label{label}"})
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run(tmp: Path, name: str, model: dict, hyperparameters: dict, datasets: dict[str, str]) -> dict:
    import torch

    from makam_worker.training.child import EXIT_OK, execute

    run_dir = tmp / name
    run_dir.mkdir()
    spec = {"run_id": name, "model": model, "hyperparameters": hyperparameters, **datasets}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    began = time.perf_counter()
    code = execute(run_dir)
    seconds = time.perf_counter() - began
    reserved = torch.cuda.max_memory_reserved() if torch.cuda.is_available() else 0
    finished = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line][-1]
    if code != EXIT_OK:
        log = (run_dir / "train.log").read_text()[-2000:] if (run_dir / "train.log").exists() else ""
        return {"run": name, "error": f"{finished.get('error_code')}: {finished.get('error_message')}", "log": log}
    m = finished["final_metrics"]
    t = m["throughput"]
    metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
    return {
        "run": name, "device": t["device"], "precision": t["precision"], "samples_per_second": t["samples_per_second"],
        "tokens_per_second": t["tokens_per_second"], "train_seconds": t["seconds"], "run_seconds": seconds,
        "peak_allocated_gib": t["peak_memory_bytes"] / GIB, "peak_reserved_gib": reserved / GIB,
        "parameters": metrics["model"].get("parameters"), "trainable": metrics["model"].get("trainable_parameters"),
        "vocab_size": metrics["model"].get("vocab_size"), "max_length": metrics["model"].get("max_length"),
        "accuracy": m["accuracy"],
    }


# --- steady state ------------------------------------------------------------------------------

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
                    "RTX 4090": 165.0, "V100": 125.0}
LLAMA_8B = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "max_position_embeddings": 8192,
            "vocab_size": 128256, "rope_theta": 500000.0}


def peak_flops(device, override_tflops: float | None) -> float | None:
    import torch

    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_BF16_TFLOPS.items() if key in name), None)


def model_flops_per_sample(model, config, seq_len: int, lora: bool) -> float:
    """PaLM's model FLOPs (Chowdhery et al. 2022, appendix B) per sample of seq_len tokens: 6N + 12·L·h·s
    per token, N the non-embedding parameters; a frozen base under LoRA computes no weight gradients,
    so 4N (forward 2N, input gradients 2N)."""
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embed" in n and "lora" not in n)
    n = sum(p.numel() for p in model.parameters()) - embedding
    layers, hidden = config.num_hidden_layers, config.hidden_size
    return seq_len * ((4 if lora else 6) * n + 12 * layers * hidden * seq_len)


def build_steady_model(spec: dict, device, precision: str, lora_r: int | None, checkpointing: bool):
    """A model from a config, built in place on the device (bf16 weights for a LoRA base, as the
    decoder family loads one), with LoRA as the decoder family sets it up."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(**{**spec, "num_labels": 4, "pad_token_id": 0})
    dtype = torch.bfloat16 if lora_r and precision == "bf16" else torch.float32
    with torch.device(device):
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa", dtype=dtype)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if lora_r:
            model.enable_input_require_grads()
    if lora_r:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=lora_r, lora_alpha=2 * lora_r,
                                                 lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                 modules_to_save=["score"]))
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    return model, config


def steady(name: str, spec: dict, *, device, precision: str, batch_size: int, seq_len: int, steps: int, warmup: int,
           lora_r: int | None = None, checkpointing: bool = False, compile_model: bool = False,
           floor: bool = True, rounds: int = 2, peak: float | None = None) -> dict:
    """The worker's step in steady state, and the same batches through a hand-written loop."""
    import copy

    import torch

    from makam_worker.training import trainer
    from makam_worker.training.config import Hyperparameters
    from makam_worker.training.losses import ClassificationLoss

    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    model, config = build_steady_model(spec, device, precision, lora_r, checkpointing)
    model.train()
    family = "decoder" if lora_r else "encoder"
    hp = Hyperparameters.from_dict({"learning_rate": 1e-5, **({"lora_r": lora_r} if lora_r else {})}, family)
    g = torch.Generator().manual_seed(1)
    n_texts = batch_size * min(steps + warmup, 32)  # batches are reused round-robin: no host work per step
    ids = torch.randint(5, config.vocab_size, (n_texts, seq_len), generator=g).tolist()
    labels = [i % 4 for i in range(n_texts)]
    data = trainer.loader(ids, labels, batch_size, 0, shuffle=True, seed=0, multiple_of=8 if cuda else 1,
                          max_width=seq_len, pin_memory=cuda)
    batches = list(data)

    def measure(step) -> float:
        for i in range(warmup):
            step(batches[i % len(batches)])
        sync()
        began = time.perf_counter()
        for i in range(steps):
            step(batches[(warmup + i) % len(batches)])
        sync()
        return time.perf_counter() - began

    loss_fn = ClassificationLoss(4)
    optimizer = trainer.optimizer_for(model, hp, device)
    scheduler = trainer.scheduler_for(optimizer, hp, warmup + steps)
    if compile_model:
        model.compile()
    def worker_step(batch) -> None:
        trainer.train_step(model, [batch], loss_fn, optimizer, device=device, precision=precision, max_grad_norm=1.0,
                           scheduler=scheduler)

    seconds = measure(worker_step)
    # Peak memory of the worker's step alone, before the floor's copy of the model exists.
    reserved = torch.cuda.max_memory_reserved(device) if cuda else 0
    allocated = torch.cuda.max_memory_allocated(device) if cuda else 0
    samples = steps * batch_size
    flops = model_flops_per_sample(model, config, seq_len, lora=bool(lora_r))
    result = {
        "run": name, "device": str(device), "precision": precision, "batch_size": batch_size, "seq_len": seq_len,
        "steps": steps, "warmup": warmup, "compile": compile_model,
        "peak_reserved_gib": reserved / GIB, "peak_allocated_gib": allocated / GIB,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "model_tflop_per_sample": flops / 1e12,
    }
    if floor:
        # The floor: what anyone would write by hand, on the same batches, same precision and optimizer;
        # the two alternate for `rounds` rounds and each keeps its best, so neither pays for going first
        # or for a busy moment of the machine.
        reference = copy.deepcopy(model)
        params = [p for p in reference.parameters() if p.requires_grad]
        plain = torch.optim.AdamW(params, lr=1e-5, **({"fused": True} if cuda else {}))
        amp = trainer.AMP_DTYPES.get(precision)

        def hand_written(batch) -> None:
            inputs = batch["input_ids"].to(device, non_blocking=True)
            target = batch["labels"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext():
                logits = reference(input_ids=inputs).logits
            torch.nn.functional.cross_entropy(logits.float(), target).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            plain.step()
            plain.zero_grad(set_to_none=True)

        floor_seconds = measure(hand_written)
        for _ in range(rounds - 1):
            seconds = min(seconds, measure(worker_step))
            floor_seconds = min(floor_seconds, measure(hand_written))
        result["floor_samples_per_second"] = samples / floor_seconds
        result["step_time_ratio_to_floor"] = seconds / floor_seconds
        del reference, plain
    result.update({
        "seconds": seconds, "samples_per_second": samples / seconds, "tokens_per_second": samples * seq_len / seconds,
        "achieved_tflops": flops * samples / seconds / 1e12, "mfu": flops * samples / seconds / peak if peak else None,
    })
    del model, optimizer, scheduler
    return result


def steady_plan(args, device, precision: str) -> list[tuple[str, dict, dict]]:
    smoke = args.smoke
    common = {"steps": args.steps, "warmup": args.warmup, "compile_model": args.compile}
    seq = 128 if smoke else 512
    plan = [
        (f"steady-encoder-{'tiny' if smoke else 'bert-base'}-{seq}-b16", TINY_BERT if smoke else BERT_BASE,
         {**common, "batch_size": 16, "seq_len": seq}),
        (f"steady-decoder-{'tiny' if smoke else 'llama-small'}-lora16-{seq}-b8", TINY_LLAMA if smoke else SMALL_LLAMA,
         {**common, "batch_size": 8, "seq_len": seq, "lora_r": 16}),
    ]
    if device.type == "cuda" and not smoke and not args.no_8b:
        plan.append(("steady-decoder-llama-3.1-8b-shape-lora16-512-b4-ckpt", LLAMA_8B,
                     {**common, "batch_size": 4, "seq_len": 512, "lora_r": 16, "checkpointing": True, "floor": False}))
    return plan


def print_steady(results: list[dict]) -> None:
    print(f"\n{'steady state':<52} {'samples/s':>9} {'tokens/s':>9} {'TFLOP/s':>8} {'MFU':>6} {'resv GiB':>8} "
          f"{'vs floor':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['run']:<52} FAILED {r['error']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "n/a"
        ratio = f"{r['step_time_ratio_to_floor']:.2f}" if "step_time_ratio_to_floor" in r else "-"
        print(f"{r['run']:<52} {r['samples_per_second']:>9.1f} {r['tokens_per_second']:>9.0f} "
              f"{r['achieved_tflops']:>8.2f} {mfu:>6} {r['peak_reserved_gib']:>8.2f} {ratio:>8}")
    print("(MFU: model FLOPs, PaLM's count, over the card's dense bf16 peak; 'vs floor': step time over a "
          "hand-written loop's on the same batches, 1.00 = at the floor)")


# --- padding report ------------------------------------------------------------------------------


def padding_datasets() -> dict[str, list[str]]:
    """The training split's prepared texts as the worker would see them (encoder defaults; lyrics-tr with
    chord lines dropped and the worker's carved split), read from ../shared/data in place."""
    import csv
    import gzip

    from makam_worker.training.config import Hyperparameters
    from makam_worker.training.data import load_splits
    from makam_worker.training.textprep import OPTIONS

    data = Path(os.environ.get("MAKAM_SHARED_DATA", REPO.parent / "shared" / "data"))
    out = {}
    with tempfile.TemporaryDirectory(prefix="makam-padding-") as name:
        tmp = Path(name)
        with gzip.open(data / "ttc3600" / "ttc3600.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        train = write(tmp / "ttc-train.jsonl", [r for r in rows if r["split"] == "train"])
        val = write(tmp / "ttc-val.jsonl", [r for r in rows if r["split"] == "val"])
        defaults = Hyperparameters.from_dict({}, "encoder")
        prepare = {key: getattr(defaults, key) for key in OPTIONS}  # as pipeline.py prepares an encoder run's texts
        out["TTC-3600"] = load_splits(Path(train), Path(val), 0.1, 42, prepare=prepare).train_texts
        with gzip.open(data / "lyrics-tr" / "turkish_lyrics.csv.gz", "rt", encoding="utf-8", newline="") as f:
            rows = [{"text": r["lyrics"], "label": r["genre"]} for r in csv.DictReader(f) if r["lyrics"].strip()]
        songs = write(tmp / "lyrics.jsonl", rows)
        out["lyrics-tr"] = load_splits(Path(songs), None, 0.1, 42, test_fraction=0.2,
                                       prepare={**prepare, "drop_chord_lines": True}).train_texts
    return out


def padding_report(batch_size: int, lengths: tuple[int, ...] = (128, 512), vocab_size: int = 32000,
                   seed: int = 42) -> list[dict]:
    """Token slots of one training epoch (epoch 1's shuffle) under each padding scheme, through the
    worker's TextEncoder (head truncation) and loader."""
    from makam_worker.training import trainer
    from makam_worker.training.families.encoder import train_wordpiece

    rows = []
    for dataset, texts in padding_datasets().items():
        tokenizer = train_wordpiece(texts, {"vocab_size": vocab_size, "min_frequency": 0})
        for max_length in lengths:
            ids, truncated = trainer.TextEncoder(tokenizer, max_length, "head")(texts)
            labels = [0] * len(ids)
            real = sum(len(x) for x in ids)
            schemes = {"fixed (max_length)": len(ids) * max_length}
            for scheme, grouped in (("dynamic, to 8", False), ("length-grouped dynamic, to 8", True)):
                data = trainer.loader(ids, labels, batch_size, 0, shuffle=True, seed=seed, group_by_length=grouped,
                                      multiple_of=8, max_width=max_length)
                schemes[scheme] = sum(int(b["input_ids"].numel()) for b in data)
            for scheme, slots in schemes.items():
                rows.append({"dataset": dataset, "max_length": max_length, "texts": len(ids), "truncated": truncated,
                             "scheme": scheme, "real_tokens": real, "padded_tokens": slots - real, "slots": slots,
                             "real_share": real / slots, "slots_vs_fixed": slots / schemes["fixed (max_length)"]})
    return rows


def print_padding(rows: list[dict], batch_size: int) -> None:
    print(f"\npadding: one training epoch, batch {batch_size}, WordPiece 32k trained on the training split, head "
          "truncation\n")
    print("| dataset | max_length | texts (truncated) | padding | real tokens | pad tokens | real share | "
          "slots vs fixed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['dataset']} | {r['max_length']} | {r['texts']:,} ({r['truncated']:,}) | {r['scheme']} | "
              f"{r['real_tokens']:,} | {r['padded_tokens']:,} | {r['real_share']:.1%} | {r['slots_vs_fixed']:.2f} |")


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models and data: checks the script on any machine")
    parser.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when present)")
    parser.add_argument("--only", action="append", choices=["steady", "runs", "padding"],
                        help="what to run (repeatable; default: steady and runs)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps in steady state (after --warmup)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--compile", action="store_true", help="steady state with torch.compile")
    parser.add_argument("--no-8b", action="store_true", help="skip the LLaMA-3.1-8B-shaped steady run")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak for MFU (default: known bf16 peaks)")
    parser.add_argument("--batch-size", type=int, default=16, help="padding report batch size")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    only = set(args.only or ["steady", "runs"])

    import torch
    import transformers

    print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}",
          flush=True)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}, "
              f"{torch.cuda.get_device_properties(device).total_memory / GIB:.1f} GiB, bf16 {torch.cuda.is_bf16_supported()}",
              flush=True)
    elif only & {"steady", "runs"} and not args.smoke:
        print("no CUDA device: use --smoke (tiny sizes) to check the script on CPU", file=sys.stderr)
        return 2
    os.environ["MAKAM_WORKER_DEVICE"] = str(device)  # the runs' training children pick it up

    output: dict = {}
    failed = False
    if "padding" in only:
        rows = padding_report(args.batch_size)
        print_padding(rows, args.batch_size)
        output["padding"] = rows
    if "steady" in only:
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
        peak = peak_flops(device, args.peak_tflops)
        results = []
        for name, spec, options in steady_plan(args, device, precision):
            print(f"... {name}", flush=True)
            try:
                result = steady(name, spec, device=device, precision=precision, peak=peak, **options)
            except torch.OutOfMemoryError as e:
                result = {"run": name, "error": f"out of memory: {str(e).splitlines()[0]}"}
            results.append(result)
            print(json.dumps(result), flush=True)
        print_steady(results)
        output["steady"] = results
        failed |= any("error" in r for r in results)
    if "runs" in only:
        results = end_to_end(args.smoke)
        output["runs"] = results
        failed |= any("error" in r for r in results)
    if args.json:
        args.json.write_text(json.dumps(output, indent=2) + "\n")
    return 1 if failed else 0


def end_to_end(smoke: bool) -> list[dict]:
    import torch

    n_train, n_eval = (64, 16) if smoke else (1024, 64)
    words, vocabulary = (120, 3000) if smoke else (700, 60000)
    bert, llama = (TINY_BERT, TINY_LLAMA) if smoke else (BERT_BASE, SMALL_LLAMA)
    encoder_vocab = 2000 if smoke else 32000
    common = {"epochs": 1, "max_length": 512, "validation_fraction": 0.1, "seed": 1, "warmup_ratio": 0.1}

    results = []
    with tempfile.TemporaryDirectory(prefix="makam-gpu-check-") as name:
        tmp = Path(name)
        began = time.perf_counter()
        rows = synthetic(n_train + 2 * n_eval, words, vocabulary, labels=4, seed=0)
        datasets = {
            "train_dataset": write(tmp / "train.jsonl", rows[:n_train]),
            "validation_dataset": write(tmp / "validation.jsonl", rows[n_train : n_train + n_eval]),
            "test_dataset": write(tmp / "test.jsonl", rows[n_train + n_eval :]),
        }
        print(f"data: {n_train} training texts of {words} words ({time.perf_counter() - began:.1f} s)", flush=True)
        encoder = {"family": "encoder", "name": "", "config": bert, "tokenizer": {"vocab_size": encoder_vocab}}
        decoder = {"family": "decoder", "name": "", "config": llama, "tokenizer": {"vocab_size": encoder_vocab}}
        plan = [
            ("encoder-bert-base-512-bf16-b16", encoder, {**common, "batch_size": 16, "learning_rate": 5e-5}),
            ("encoder-bert-base-512-bf16-b8x4-ckpt", encoder,
             {**common, "batch_size": 8, "gradient_accumulation_steps": 4, "gradient_checkpointing": True}),
            ("decoder-llama-small-lora16-512-bf16-b8", decoder, {**common, "batch_size": 8, "lora_r": 16}),
            ("decoder-llama-small-lora16-512-bf16-b8-ckpt-merged", decoder,
             {**common, "batch_size": 8, "lora_r": 16, "gradient_checkpointing": True, "export": "merged"}),
        ]
        for run_name, model, hp in plan:
            print(f"... {run_name}", flush=True)
            result = run(tmp, run_name, model, hp, datasets)
            results.append(result)
            print(json.dumps(result), flush=True)

    print()
    print(f"{'run':<46} {'samples/s':>9} {'tokens/s':>9} {'alloc GiB':>9} {'resv GiB':>8} {'params':>11} {'vocab':>6}")
    for r in results:
        if "error" in r:
            print(f"{r['run']:<46} FAILED {r['error']}")
            continue
        print(f"{r['run']:<46} {r['samples_per_second']:>9.1f} {r['tokens_per_second']:>9.0f} "
              f"{r['peak_allocated_gib']:>9.2f} {r['peak_reserved_gib']:>8.2f} {r['parameters']:>11,} {r['vocab_size']:>6}")
    checkpointed = next((r for r in results if r["run"].endswith("b8x4-ckpt") and "error" not in r), None)
    if checkpointed:
        # The CUDA context (~0.5 GiB) comes on top of what the allocator reserves.
        fits = checkpointed["peak_reserved_gib"] + 0.5 <= 4.0
        print(f"\nBERT-base, 512 tokens, bf16, batch 8 x 4 accumulation + checkpointing: peak reserved "
              f"{checkpointed['peak_reserved_gib']:.2f} GiB (+ ~0.5 GiB CUDA context) -> fits 4 GB: {fits}")
    return results


if __name__ == "__main__":
    raise SystemExit(main())
