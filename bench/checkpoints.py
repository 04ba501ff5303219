"""Checkpoint cost benchmark: what saving the training state takes from the training loop.

Trains a config-built encoder (a BERT of 4 layers, hidden 256: ~4M trainable parameters, so a
checkpoint of weights plus AdamW moments is ~50 MB) in this process through the worker's own run
entry (training.child.execute), once per mode, on the same data and seed:

- `none`:  checkpoint_every_epochs above the epoch count: only the last epoch's checkpoint;
- `sync`:  a checkpoint every epoch, written in the training thread (CheckpointWriter.background off,
           as the worker did before);
- `async`: a checkpoint every epoch, copied to CPU memory, then written in a background thread;
- `every5`: async, checkpoint_every_epochs 5.

Printed per mode: the mean epoch time (between consecutive `metrics` events, so a checkpoint's stall
counts in the epoch after it is taken), the time the training thread spent on checkpoints (the run's
own "checkpoints: ..." log event) and that as a share of the training loop, beside `none` measured in
the same run. Under load the figures are noisy; compare the columns of one run.

    workers-python/.venv/bin/python bench/checkpoints.py                  # 6 epochs, 2 000 texts
    workers-python/.venv/bin/python bench/checkpoints.py --epochs 10 --rows 4000 --json checkpoints.json

A benchmark, not a test: nothing is asserted beyond every run succeeding.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workers-python" / "src"))

from makam_worker.training import train_state  # noqa: E402
from makam_worker.training.child import EXIT_OK, execute  # noqa: E402

ENCODER = {"model_type": "bert", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
           "intermediate_size": 512, "max_position_embeddings": 128}
WORDS = {"spor": ["maç", "gol", "takım", "hakem", "lig"], "ekonomi": ["borsa", "faiz", "enflasyon", "dolar", "bütçe"],
         "kültür": ["sergi", "roman", "tiyatro", "konser", "şair"]}
FILLER = ["bugün", "dün", "yine", "çok", "az", "haber", "göre", "yeni", "büyük", "şehir", "için", "ve"]


def dataset(rows: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(rows):
        label = list(WORDS)[i % len(WORDS)]
        text = " ".join(rng.choice(FILLER) if rng.random() < 0.7 else rng.choice(WORDS[label]) for _ in range(24))
        lines.append(json.dumps({"text": text, "label": label}, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def run(root: Path, name: str, data: bytes, hp: dict, background: bool) -> dict:
    run_dir = root / name
    run_dir.mkdir()
    (root / f"{name}.jsonl").write_bytes(data)
    spec = {"run_id": name, "train_dataset": str(root / f"{name}.jsonl"), "validation_dataset": None,
            "model": {"family": "encoder", "name": "", "config": ENCODER, "tokenizer": {"vocab_size": 500}},
            "hyperparameters": hp}
    (run_dir / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    train_state.CheckpointWriter.background = background
    assert execute(run_dir) == EXIT_OK, (run_dir / "events.jsonl").read_text()[-2000:]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    ends = [e["time_unix_ms"] for e in events if e["type"] == "metrics"]
    epochs_s = [(b - a) / 1000 for a, b in zip(ends, ends[1:])]  # from the 2nd epoch: the 1st includes set-up
    line = next(e["message"] for e in events if e["type"] == "log" and e["message"].startswith("checkpoints: "))
    count, spent, loop_s = re.match(r"checkpoints: (\d+) saved, ([\d.]+)s of the training loop's ([\d.]+)s", line).groups()
    size = (run_dir / "checkpoint.tar").stat().st_size
    return {"mode": name, "epoch_s": statistics.mean(epochs_s), "checkpoints": int(count),
            "checkpoint_s": float(spent), "loop_s": float(loop_s), "share": float(spent) / float(loop_s),
            "checkpoint_mb": size / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    data = dataset(args.rows)
    base = {"epochs": args.epochs, "batch_size": 32, "learning_rate": 1e-3, "max_length": 64, "seed": 1,
            "validation_fraction": 0.1}
    modes = [("none", {"checkpoint_every_epochs": 1000}, True), ("sync", {}, False), ("async", {}, True),
             ("every5", {"checkpoint_every_epochs": 5}, True)]
    results = []
    with tempfile.TemporaryDirectory(prefix="makam-bench-checkpoints-") as tmp:
        for name, extra, background in modes:
            results.append(run(Path(tmp), name, data, {**base, **extra}, background))
            r = results[-1]
            print(f"{name:7s} epoch {r['epoch_s']:.3f}s  checkpoints {r['checkpoints']:2d} of {r['checkpoint_mb']:.0f} MB: "
                  f"{r['checkpoint_s']:.3f}s of the loop's {r['loop_s']:.2f}s ({100 * r['share']:.1f}%)", flush=True)
    none = results[0]["epoch_s"]
    print("\nmode     epoch s   vs none   checkpoint share of the loop")
    for r in results:
        print(f"{r['mode']:7s}  {r['epoch_s']:7.3f}   {r['epoch_s'] / none:6.2f}x   {100 * r['share']:5.1f}%")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
