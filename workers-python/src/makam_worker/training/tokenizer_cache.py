"""Trained tokenizers reused across runs: `state_dir/tokenizers/<key>/`, keyed by a hash of the
training texts' content and every setting of the tokenizer, so the trials of a tune job and repeated
runs on the same data train each tokenizer once (SentencePiece on a large corpus takes seconds to
minutes) and build their models on byte-identical vocabularies.

The worker names the directory to its training processes in MAKAM_WORKER_TOKENIZER_CACHE
(process.py); without it (a test calling the child directly) every tokenizer is trained afresh. An
entry is trained into a temporary directory and renamed into place, whole or not at all; two runs
that train the same one at once both succeed and one rename wins. Callers load the tokenizer from
the directory at once: only the least recently used entries beyond MAX_ENTRIES are removed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("makam_worker.training")

ENV = "MAKAM_WORKER_TOKENIZER_CACHE"
CACHE_DIR = "tokenizers"  # under the state dir
# Bumped when a trainer's code changes what it makes from the same texts and settings.
FORMAT = 1
# Entries kept; the least recently used go first. Each is a few MB at most.
MAX_ENTRIES = 64


def cache_root() -> Path | None:
    raw = os.environ.get(ENV, "")
    return Path(raw) if raw else None


def key(kind: str, texts: Sequence[str], settings: Mapping[str, Any]) -> str:
    """sha256 of the kind, the settings, the trainer's library version and every text, in order."""
    digest = hashlib.sha256()
    head = {"format": FORMAT, "kind": kind, "settings": dict(settings), "versions": _versions(kind)}
    digest.update(json.dumps(head, sort_keys=True, ensure_ascii=False).encode())
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: ["ab"] and ["a", "b"] differ
        digest.update(data)
    return digest.hexdigest()


@contextlib.contextmanager
def cached(kind: str, texts: Sequence[str], settings: Mapping[str, Any],
           train: Callable[[Path], None]) -> Iterator[Path]:
    """A directory holding the tokenizer that `train(directory)` makes from `texts` with `settings`:
    the cache's entry when it has one, else trained (into the cache, when there is one). Read it
    inside the `with`."""
    root = cache_root()
    if root is None:
        with tempfile.TemporaryDirectory(prefix=f"makam-{kind}-") as tmp:
            train(Path(tmp))
            yield Path(tmp)
        return
    entry = root / key(kind, texts, settings)
    if entry.is_dir():
        os.utime(entry)  # recently used: kept longest
        logger.info("%s tokenizer reused from the worker's cache (%s)", kind, entry.name[:12])
        yield entry
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{entry.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        train(tmp)
        try:
            tmp.rename(entry)
        except OSError:  # another run stored the same one first: theirs is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("%s tokenizer trained and stored in the worker's cache (%s)", kind, entry.name[:12])
    _evict(root, keep=entry)
    yield entry


def _evict(root: Path, keep: Path) -> None:
    entries = []
    for path in root.iterdir():
        if path.name.startswith(".") or path == keep:
            continue
        try:
            entries.append((path.stat().st_mtime_ns, path))
        except FileNotFoundError:
            continue
    for _, path in sorted(entries)[: max(0, len(entries) + 1 - MAX_ENTRIES)]:
        shutil.rmtree(path, ignore_errors=True)


@functools.cache
def _versions(kind: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ["sentencepiece"] if kind == "sentencepiece" else ["tokenizers", "transformers"]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = ""
    return found
