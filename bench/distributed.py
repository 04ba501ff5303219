"""Scaling of one run from one device to all of a node's: the same training run started the way the
worker starts it (process.RunProcess.spawn: one process for 1 device, torchrun with DDP for more;
training/distributed.py), once with 1 device and once with every visible device, each device taking
the same per-device batch (weak scaling: the global batch grows with the devices, as batch_size is per
device). The figure is the run's own final_metrics.throughput.samples_per_second: every rank's
training samples over the training loop's seconds (evaluation, checkpoints, start-up and the torchrun
rendezvous not counted), over --epochs epochs so the first steps weigh little. The two alternate for
--rounds rounds (default 2) and the best of each is kept, so a burst of other load on the machine
does not land on one side only. Prints both and the ratio; on CUDA the ideal is the device count.

    workers-python/.venv/bin/python bench/distributed.py                 # CUDA: 1 vs every GPU
    workers-python/.venv/bin/python bench/distributed.py --cpu-devices 2  # CPU, gloo: shows it runs

On CPU a "device" is one core (OMP_NUM_THREADS=1 in every process: OpenMP threads of one process
spinning on a loaded machine would measure the machine, not DDP), so the ratio shows the gloo
path works and what its all-reduce costs there; it is no GPU figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workers-python" / "src"))

SIZES = {
    # A BERT-small-shaped encoder built from a config (no download), and a tiny one for a smoke run.
    "small": {"model_type": "bert", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
              "intermediate_size": 1024, "max_position_embeddings": 512},
    "tiny": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 128},
}
WORDS = ("kalbim seni özledi dağların ardında denizin dalgaları İstanbul sokakları trafik gece yağmur "
         "toprak kuşlar nehir sevgilim gözlerin metro beton otobüs durağında orman yemyeşil").split()


def dataset(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    labels = ["a", "b", "c", "d"]
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            label = labels[i % len(labels)]
            words = [rng.choice(WORDS) for _ in range(rng.randint(8, 60))] + [f"k{label}"]
            f.write(json.dumps({"text": " ".join(words), "label": label}, ensure_ascii=False) + "\n")


def run(root: Path, name: str, devices: int, args: argparse.Namespace, env: dict[str, str]) -> dict:
    from makam_worker.layout import RunPaths
    from makam_worker.process import RunProcess
    from makam_worker.warm import WarmProcess

    run_dir = root / name
    run_dir.mkdir()
    spec = {
        "run_id": name, "devices": devices,
        "model": {"family": "encoder", "name": "", "config": SIZES[args.size], "tokenizer": {"vocab_size": 2000}},
        "train_dataset": str(root / "train.jsonl"), "validation_dataset": None,
        "hyperparameters": {"epochs": args.epochs, "batch_size": args.batch_size, "max_length": args.max_length,
                            "validation_fraction": 0.05, "seed": 1, "learning_rate": 1e-4},
    }
    (run_dir / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        began = time.monotonic()
        proc = RunProcess.spawn(RunPaths(run_dir), WarmProcess(), devices=devices)  # a never-started warm: spawned
        proc.done.wait()
        wall = time.monotonic() - began
    finally:
        os.environ.clear()
        os.environ.update(saved)
    finished = json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])
    if finished.get("state") != "SUCCEEDED":
        raise SystemExit(f"{name} did not succeed: {finished}\n{(run_dir / 'train.log').read_text()[-3000:]}")
    return {**finished["final_metrics"]["throughput"], "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-devices", type=int, default=2, help="devices (gloo processes) without CUDA")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16, help="per device")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    devices = torch.cuda.device_count() if cuda else args.cpu_devices
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="makam-ddp-bench-") as tmp:
        root = Path(tmp)
        dataset(root / "train.jsonl", args.rows, seed=0)
        results: dict[int, dict] = {}
        for round_ in range(1, args.rounds + 1):
            for n in (1, devices):
                env = {"HF_HUB_OFFLINE": "1", "MAKAM_WORKER_WARM": "0"}
                if not cuda:
                    env |= {"MAKAM_WORKER_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "MAKAM_WORKER_CPUS": "1"}
                r = run(root, f"devices-{n}-round-{round_}", n, args, env)
                print(f"round {round_}, {n} device(s): {r['samples_per_second']:.1f} samples/s ({r['samples']} samples "
                      f"in {r['seconds']:.1f}s of training loop; {r['wall_seconds']:.1f}s wall with start-up)", flush=True)
                if n not in results or r["samples_per_second"] > results[n]["samples_per_second"]:
                    results[n] = r
    kind = f"{torch.cuda.get_device_name()} x{devices}" if cuda else f"CPU, {devices} gloo processes on {cores} cores"
    ratio = results[devices]["samples_per_second"] / results[1]["samples_per_second"]
    print(f"scaling 1 -> {devices} devices ({kind}, {args.size}, batch {args.batch_size}/device, "
          f"{args.max_length} tokens), best of {args.rounds}: {results[1]['samples_per_second']:.1f} -> "
          f"{results[devices]['samples_per_second']:.1f} samples/s, {ratio:.2f}x (ideal {devices}x)")


if __name__ == "__main__":
    main()
