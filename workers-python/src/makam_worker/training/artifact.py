"""Writes the finished model directory and packs it as model.tar.gz with its sha256."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from makam_worker.layout import RunPaths, sha256_file
from makam_worker.training.spans import phase


def write_files(model_dir: Path, label_names: list[str], metrics: dict[str, Any], card: str) -> None:
    """labels.json, metrics.json and the README.md model card, beside the model files at the top of `model_dir`."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "labels.json").write_text(json.dumps(label_names, ensure_ascii=False, indent=2) + "\n")
    (model_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
    (model_dir / "README.md").write_text(card)


def pack(paths: RunPaths) -> str:
    """Packs model/ with its files at the archive root (`tar xzf model.tar.gz -C dir`, then
    from_pretrained(dir)); returns the sha256 hex, also written to model.tar.gz.sha256."""
    tmp = paths.archive.with_name(paths.archive.name + ".tmp")
    with phase("packing") as span:
        # Level 1: weights barely compress, and level 9 costs minutes on a full-size model.
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tar:
            for file in sorted(p for p in paths.model.rglob("*") if p.is_file()):
                tar.add(file, arcname=file.relative_to(paths.model).as_posix())
        digest = sha256_file(tmp)
        span["size_bytes"] = tmp.stat().st_size
    os.replace(tmp, paths.archive)
    sha_tmp = paths.archive_sha256.with_name(paths.archive_sha256.name + ".tmp")
    sha_tmp.write_text(digest + "\n")
    os.replace(sha_tmp, paths.archive_sha256)
    return digest
