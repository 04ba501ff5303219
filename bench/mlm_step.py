"""Time of a masked-LM training step of the TTC-3600 scratch model (CPU): the head at the masked
positions only (ScratchForMaskedLM.forward with labels) beside the full-vocabulary head it replaced
(every position scored on the vocabulary, cross-entropy with ignore_index), in the same run.

The model, tokenizer, pieces and masking are the worker's own (quality.py's SCRATCH_TTC with the
character n-gram branch, its unigram tokenizer trained on TTC-3600's training split, mlm.pieces and
transformers' collator at mlm_probability). Both heads train their own copy of the same initial
weights with AdamW on the same batches; the steps alternate (one of each, then the next batch) so a
change of machine load falls on both. Only the training split is read (the phase never reads others).

    workers-python/.venv/bin/python bench/mlm_step.py                # 3 warm-up + 20 timed steps each
    workers-python/.venv/bin/python bench/mlm_step.py --steps 40 --max-length 128
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gzip
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from quality import DATA, SCRATCH_TTC  # noqa: E402  (also puts the worker's src on sys.path)

from makam_worker.run_spec import ModelSpec  # noqa: E402
from makam_worker.training import mlm  # noqa: E402
from makam_worker.training.config import Hyperparameters  # noqa: E402
from makam_worker.training.data import load_splits  # noqa: E402
from makam_worker.training.family import BuildContext  # noqa: E402
from makam_worker.training.steps import optimizer_for  # noqa: E402
from makam_worker.training.trainer import _builder  # noqa: E402
from transformers import DataCollatorForLanguageModeling  # noqa: E402


def full_vocabulary_loss(head: mlm.ScratchForMaskedLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The forward before the change: every position's logits, the masked ones' mean cross-entropy."""
    logits = head(batch["input_ids"], batch.get("attention_mask")).logits
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), batch["labels"].view(-1), ignore_index=-100)


def masked_only_loss(head: mlm.ScratchForMaskedLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return head(**batch).loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per head (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per head first")
    parser.add_argument("--max-length", type=int, default=SCRATCH_TTC["max_length"])
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = {**SCRATCH_TTC, "char_ngram_buckets": 262144, "max_length": args.max_length, "mlm_epochs": 1}
    hp = Hyperparameters.from_dict(settings, "scratch")
    with gzip.open(DATA / "ttc3600" / "ttc3600.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if r["split"] == "train"]
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        train.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n"
                                 for r in rows))
        splits = load_splits(train, None, 0.0, hp.seed)
        ctx = BuildContext(hp=hp, splits=splits, device=torch.device("cpu"), precision="fp32", work_dir=Path(tmp) / "w",
                           log=logging.getLogger("bench"))
        spec = ModelSpec.from_dict({"family": "scratch", "name": "", "config": None, "tokenizer": None})
        built = _builder("scratch")(spec, ctx)
        data = mlm.pieces(built.tokenizer, mlm.texts_for(splits), built.max_length)
    collator = DataCollatorForLanguageModeling(built.tokenizer, mlm_probability=hp.mlm_probability)
    count = args.warmup + args.steps
    order = torch.randperm(len(data)).tolist()
    batches = [collator([{"input_ids": data[i]} for i in order[k * hp.batch_size:(k + 1) * hp.batch_size]])
               for k in range(count)]
    masked_share = statistics.mean(float((b["labels"] != -100).sum() / b["labels"].numel()) for b in batches)
    heads = {"masked-only": (mlm.ScratchForMaskedLM(built.model), masked_only_loss)}
    heads["full-vocabulary"] = (copy.deepcopy(heads["masked-only"][0]), full_vocabulary_loss)
    optimizers = {name: optimizer_for(head, dataclasses.replace(hp, learning_rate=1e-3)) for name, (head, _) in heads.items()}
    times: dict[str, list[float]] = {name: [] for name in heads}
    losses: dict[str, list[float]] = {name: [] for name in heads}
    print(f"{len(splits.train_texts)} texts in {len(data)} pieces of up to {built.max_length} tokens "
          f"({len(data) / hp.batch_size:.0f} steps an epoch at batch {hp.batch_size}); vocabulary {len(built.tokenizer)}, "
          f"{masked_share:.1%} of the batches' positions masked (padding included); {torch.get_num_threads()} threads", flush=True)
    for k, batch in enumerate(batches):
        for name, (head, loss_of) in heads.items():
            head.train()
            start = time.perf_counter()
            optimizers[name].zero_grad(set_to_none=True)
            loss = loss_of(head, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), hp.max_grad_norm)
            optimizers[name].step()
            elapsed = time.perf_counter() - start
            if k >= args.warmup:
                times[name].append(elapsed)
                losses[name].append(loss.item())
    for name in heads:
        t = times[name]
        print(f"{name:16s} {1000 * statistics.mean(t):8.1f} ms/step (median {1000 * statistics.median(t):.1f}, "
              f"sd {1000 * statistics.stdev(t):.1f}, {len(t)} steps); mean loss {statistics.mean(losses[name]):.4f}")
    full, masked = statistics.mean(times["full-vocabulary"]), statistics.mean(times["masked-only"])
    print(f"ratio full / masked-only: {full / masked:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
