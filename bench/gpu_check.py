"""A few minutes on a CUDA machine: the worker's encoder and decoder paths at real sizes.

Every run goes through the worker's training child (makam_worker.training.child.execute), on synthetic
data written to a temporary directory, and reads samples/s, tokens/s and peak memory from the
run's own final_metrics.throughput (torch.cuda.max_memory_allocated), plus the allocator's peak
reserved memory read here after each run.

1. encoder: a BERT-base-sized model built from a config (12 layers, 768 wide, 12 heads, vocabulary
   ~32k from a WordPiece trained on the synthetic texts) at 512 tokens in bf16, batch 16;
2. the same with batch 8 x 4 accumulation steps and gradient checkpointing: does it fit 4 GB?
3. decoder: a small LLaMA-shaped config (hidden 1024, 12 layers, 16 heads, 4 KV heads) with LoRA
   r=16 on q/k/v/o, bf16 base, at 512 tokens, batch 8, and again with gradient checkpointing
   (that one exported merged).

    PYTHONPATH=workers-python/src python3 bench/gpu_check.py            # on the GPU machine
    PYTHONPATH=workers-python/src python3 bench/gpu_check.py --smoke    # tiny sizes, any machine

Needs torch with CUDA, transformers, peft, tokenizers, scikit-learn; not the worker's venv.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models and data: checks the script on any machine")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    import torch
    import transformers

    print(f"python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}",
          flush=True)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}, {torch.cuda.get_device_properties(0).total_memory / GIB:.1f} GiB, "
              f"bf16 {torch.cuda.is_bf16_supported()}", flush=True)
    elif not args.smoke:
        print("no CUDA device: use --smoke to check the script on CPU", file=sys.stderr)
        return 2

    smoke = args.smoke
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
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
