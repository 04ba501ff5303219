"""Shared fixtures: a small Turkish dataset with three labels, and tiny BERT and Llama configs to build
models from (the one copy the test files share).

Each label has its own keywords; the sentence frames are shared, so a model has to learn the
keywords to beat chance. Nothing is downloaded: the tokenizer is trained on the training split.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

# Set before anything imports huggingface_hub (it reads these at import); training children inherit them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["MAKAM_WORKER_DEVICE"] = "cpu"
# Tiny models train faster on one thread, and several training children share the test machine's cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

KEYWORDS = {
    "aşk": ["kalbim seni özledi", "sevgilim gözlerin", "aşkın ateşi yakar", "yarim gitti",
            "seni seviyorum", "gönlüm sende kaldı"],
    "doğa": ["dağların ardında", "denizin dalgaları", "orman yemyeşil", "yağmur toprağa düşer",
             "kuşlar ağaçta öter", "nehir akıyor"],
    "şehir": ["İstanbul sokakları", "trafik ve korna sesi", "metro kalabalık", "beton binalar",
              "caddede gece ışıkları", "otobüs durağında"],
}
FRAMES = ["{} bu akşam", "Yine {} diye şarkı söylerim", "{} her zaman aklımda", "Dün gece {}"]
EXAMPLES = [{"text": frame.format(k), "label": label} for label, ks in KEYWORDS.items() for k in ks for frame in FRAMES]
LABELS = sorted(KEYWORDS)

TINY_BERT: dict[str, Any] = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}
TINY_LLAMA: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}
TOKENIZER = {"vocab_size": 300}
# The scratch family builds its model from hyperparameters: no config, no tokenizer.
SCRATCH: dict[str, Any] = {"family": "scratch", "name": "", "config": None, "tokenizer": None}
# Enough to learn the keywords: lr and epochs are far above what a real model would use.
LEARNS = {"epochs": 25, "batch_size": 8, "learning_rate": 3e-3, "validation_fraction": 0.25, "seed": 3}
QUICK = {**LEARNS, "epochs": 3}
# Runs for minutes unless cancelled or killed.
LONG = {**LEARNS, "epochs": 1000}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


DATASET = jsonl(EXAMPLES)
DATASET_SHA256 = hashlib.sha256(DATASET).hexdigest()


def model_spec() -> dict[str, Any]:
    return {"family": "encoder", "name": "", "config": dict(TINY_BERT), "tokenizer": dict(TOKENIZER)}


def write_run_dir(root: Path, name: str, hyperparameters: dict[str, Any], *, model: dict[str, Any] | None = None,
                  dataset: bytes = DATASET, validation: bytes | None = None, test: bytes | None = None) -> Path:
    """A run dir as the server would create it: spec.json pointing at dataset files (`validation` and
    `test`: split datasets given with the job), no events yet."""
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str | None] = {}
    for split, rows in (("train", dataset), ("validation", validation), ("test", test)):
        paths[split] = None
        if rows is not None:
            path = root / f"{name}-{split}.jsonl"
            path.write_bytes(rows)
            paths[split] = str(path)
    run_dir = root / name
    run_dir.mkdir()
    spec = {
        "run_id": name,
        "model": model or model_spec(),
        "train_dataset": paths["train"],
        "validation_dataset": paths["validation"],
        "test_dataset": paths["test"],
        "hyperparameters": hyperparameters,
    }
    (run_dir / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    return run_dir


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line]




def extract(archive, dest) -> None:
    """Unpacks a model archive; the "data" filter where this Python has it (3.11.4+, 3.12+)."""
    import tarfile

    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
