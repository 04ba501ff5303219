"""Quality benchmark of the worker's tfidf and scratch families on real Turkish data (CPU).

Each run goes through the worker's own training child (makam_worker.training.child.execute) exactly as
a job would: a spec.json with the datasets and hyperparameters, then the events and metrics it writes.
Datasets are read from ../shared/data and written as JSONL to a temporary directory, never into the
repository.

    workers-python/.venv/bin/python bench/quality.py                      # both datasets, every run
    workers-python/.venv/bin/python bench/quality.py --only ttc3600 --runs tfidf
    workers-python/.venv/bin/python bench/quality.py --json results.json  # also write the figures

TTC-3600 uses its fixed splits (train to train, val to validate and pick the best epoch, test to
report). The lyrics set has no splits: the worker carves a stratified seeded validation (10%) and test
(20%) split, removes evaluation texts duplicated in training, and reports the majority baseline.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MAKAM_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO / "workers-python" / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

NO_MODEL = {"name": "", "config": None, "tokenizer": None}

# The scratch settings this benchmark arrived at (bench/README.md lists every configuration tried):
# one pre-norm block over 512 head+tail tokens of a 16k unigram vocabulary, mean pooling.
SCRATCH_TTC = {
    "epochs": 15, "early_stopping_patience": 4, "batch_size": 32, "learning_rate": 3e-3, "max_length": 512,
    "truncation": "head+tail", "layers": 1, "heads": 2, "d_model": 64, "ff_dim": 256, "dropout": 0.1,
    "vocab_size": 16000, "tokenizer_model": "unigram", "warmup_ratio": 0.1, "lr_scheduler": "cosine",
    "weight_decay": 0.01, "label_smoothing": 0.1,
}
SCRATCH_LYRICS = {**SCRATCH_TTC, "epochs": 10, "early_stopping_patience": 3, "drop_chord_lines": True,
                  "validation_fraction": 0.1, "test_fraction": 0.2}
TFIDF_LYRICS = {"drop_chord_lines": True, "validation_fraction": 0.1, "test_fraction": 0.2}

RUNS = {
    "ttc3600": [
        ("tfidf", "tfidf", {}),
        ("scratch", "scratch", SCRATCH_TTC),
    ],
    "lyrics": [
        ("tfidf", "tfidf", TFIDF_LYRICS),
        ("scratch cross-entropy", "scratch", SCRATCH_LYRICS),
        ("scratch focal (gamma 2)", "scratch", {**SCRATCH_LYRICS, "loss": "focal", "label_smoothing": 0.0}),
        ("scratch class_weights=balanced", "scratch", {**SCRATCH_LYRICS, "class_weights": "balanced"}),
    ],
}


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"text": row["text"], "label": row["label"]}, ensure_ascii=False) + "\n")
    return path


def ttc3600(tmp: Path) -> dict[str, Path]:
    with gzip.open(DATA / "ttc3600" / "ttc3600.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    split = {name: [r for r in rows if r["split"] == name] for name in ("train", "val", "test")}
    return {
        "train_dataset": write_jsonl(tmp / "ttc-train.jsonl", split["train"]),
        "validation_dataset": write_jsonl(tmp / "ttc-val.jsonl", split["val"]),
        "test_dataset": write_jsonl(tmp / "ttc-test.jsonl", split["test"]),
    }


def lyrics(tmp: Path) -> dict[str, Path]:
    with gzip.open(DATA / "lyrics-tr" / "turkish_lyrics.csv.gz", "rt", encoding="utf-8", newline="") as f:
        rows = [{"text": r["lyrics"], "label": r["genre"]} for r in csv.DictReader(f) if r["lyrics"].strip()]
    return {"train_dataset": write_jsonl(tmp / "lyrics.jsonl", rows)}


def run(tmp: Path, name: str, family: str, datasets: dict[str, Path], hyperparameters: dict[str, Any]) -> dict:
    from makam_worker.training.child import EXIT_OK, execute

    run_dir = tmp / name.replace(" ", "-").replace("=", "-").replace("(", "").replace(")", "")
    run_dir.mkdir()
    spec = {"run_id": run_dir.name, "model": {"family": family, **NO_MODEL},
            "hyperparameters": hyperparameters, "validation_dataset": None, "test_dataset": None,
            **{k: str(v) for k, v in datasets.items()}}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    began = time.perf_counter()
    code = execute(run_dir)
    seconds = time.perf_counter() - began
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line]
    finished = events[-1]
    if code != EXIT_OK:
        raise SystemExit(f"{name} failed: {finished.get('error_code')}: {finished.get('error_message')}")
    m = finished["final_metrics"]
    return {
        "run": name, "family": family, "evaluated_on": m["evaluated_on"], "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"], "weighted_f1": m["weighted_f1"],
        "majority_baseline_accuracy": m["majority_baseline_accuracy"], "best_epoch": m["best_epoch"],
        "epochs_trained": m["epochs_trained"], "seconds": seconds, "train_seconds": m["throughput"]["seconds"],
        "samples_per_second": m["throughput"]["samples_per_second"], "examples": m["data"]["examples"],
        "leaks": m["data"]["leaks"], "validation_accuracy": (m.get("validation") or {}).get("accuracy"),
        "per_class_f1": {k: v["f1"] for k, v in m["test"]["per_class"].items()},
        "hyperparameters": hyperparameters,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(RUNS), help="one dataset")
    parser.add_argument("--runs", help="comma-separated run names or families to keep (e.g. tfidf)")
    parser.add_argument("--scratch", type=json.loads, default={}, help="JSON overrides for every scratch run")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    os.environ.setdefault("MAKAM_WORKER_DEVICE", "cpu")
    keep = {k.strip() for k in args.runs.split(",")} if args.runs else None
    results = []
    with tempfile.TemporaryDirectory(prefix="makam-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for dataset, runs in RUNS.items():
            if args.only and dataset != args.only:
                continue
            datasets = (ttc3600 if dataset == "ttc3600" else lyrics)(tmp)
            for name, family, hp in runs:
                if keep and name not in keep and family not in keep:
                    continue
                hp = {**hp, **(args.scratch if family == "scratch" else {})}
                print(f"... {dataset}: {name}", file=sys.stderr, flush=True)
                results.append({"dataset": dataset, **run(tmp, f"{dataset}-{name}", family, datasets, hp)})
    print()
    print(f"{'dataset':<8} {'run':<32} {'on':<5} {'accuracy':>8} {'macro F1':>8} {'majority':>8} "
          f"{'epochs':>6} {'seconds':>8}")
    for r in results:
        epochs = f"{r['best_epoch']}/{r['epochs_trained']}" if r["family"] != "tfidf" else "-"
        print(f"{r['dataset']:<8} {r['run']:<32} {r['evaluated_on'][:5]:<5} {r['accuracy']:>8.4f} {r['macro_f1']:>8.4f} "
              f"{r['majority_baseline_accuracy']:>8.4f} {epochs:>6} {r['seconds']:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
