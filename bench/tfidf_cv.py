"""Validation-only study of tfidf feature and classifier options on TTC-3600 (issue 13): repeated
stratified k-fold cross-validation over train + val, never the test split.

The texts go through the worker's own data loading and text preparation (load_splits with the tfidf
family's defaults: NFC, escapes, Turkish lower case), and the defaults' features are the worker's
own pipeline_for. To keep ~30 candidates within minutes, each analyzer's counts are computed once
over all train + val texts; per fold the columns absent from the fold's training rows are dropped and
the tf-idf weighting is fit on those rows, which is what a vectorizer fit on the fold gives
(checked against pipeline_for on the first fold, printed). The table gives each candidate's accuracy
mean ± sample sd over the folds, and its paired difference from the defaults fold by fold (the
yardstick: both see the same folds, so the split's noise cancels).

    workers-python/.venv/bin/python bench/tfidf_cv.py                  # 5 folds x 2 repeats
    workers-python/.venv/bin/python bench/tfidf_cv.py --repeats 1 --only defaults,prefix5
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MAKAM_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO / "workers-python" / "src"))

TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


def prefix_analyzer(k: int, ngram_max: int = 2):
    """Words cut to their first k characters (a fixed-prefix stem), as 1..ngram_max-grams."""
    def analyze(text: str) -> list[str]:
        stems = [t[:k] for t in TOKEN.findall(text)]
        grams = list(stems)
        for n in range(2, ngram_max + 1):
            grams += [" ".join(stems[i:i + n]) for i in range(len(stems) - n + 1)]
        return grams
    return analyze


def load() -> tuple[list[str], list[int], list[str]]:
    """Train + val of TTC-3600 as the worker prepares them for tfidf (the test rows are not even read)."""
    from makam_worker.contracts.hyperparameters import Hyperparameters
    from makam_worker.training.data import load_splits
    from makam_worker.training.refit import merged
    from makam_worker.training.textprep import OPTIONS

    hp = Hyperparameters(family="tfidf")
    with gzip.open(DATA / "ttc3600" / "ttc3600.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if r["split"] in ("train", "val")]
    with tempfile.TemporaryDirectory(prefix="makam-tfidf-cv-") as tmp:
        paths = {}
        for split in ("train", "val"):
            paths[split] = Path(tmp) / f"{split}.jsonl"
            paths[split].write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n"
                                            for r in rows if r["split"] == split), encoding="utf-8")
        splits = load_splits(paths["train"], paths["val"], hp.validation_fraction, hp.seed,
                             prepare={name: getattr(hp, name) for name in OPTIONS},
                             remove_eval_duplicates=hp.remove_eval_duplicates)
    data = merged(splits)
    return data.train_texts, data.train_labels, splits.label_names


# Analyzers, by name: counted once over all texts.
ANALYZERS: dict[str, dict[str, Any]] = {
    "word12": {"analyzer": "word", "ngram_range": (1, 2)},
    "word1": {"analyzer": "word", "ngram_range": (1, 1)},
    "word13": {"analyzer": "word", "ngram_range": (1, 3)},
    "charwb25": {"analyzer": "char_wb", "ngram_range": (2, 5)},
    "charwb26": {"analyzer": "char_wb", "ngram_range": (2, 6)},
    "charwb36": {"analyzer": "char_wb", "ngram_range": (3, 6)},
    "charwb15": {"analyzer": "char_wb", "ngram_range": (1, 5)},
    "char25": {"analyzer": "char", "ngram_range": (2, 5)},
    **{f"prefix{k}": {"analyzer": prefix_analyzer(k)} for k in (4, 5, 6, 7)},
    "prefix5uni": {"analyzer": prefix_analyzer(5, 1)},
}

# name: (analyzers, weighting options, classifier, C)
DEFAULT = (("word12", "charwb25"), {}, "svc", 1.0)
CANDIDATES: dict[str, tuple[tuple[str, ...], dict[str, Any], str, float]] = {
    "defaults": DEFAULT,
    "C 0.3": (DEFAULT[0], {}, "svc", 0.3),
    "C 0.5": (DEFAULT[0], {}, "svc", 0.5),
    "C 2": (DEFAULT[0], {}, "svc", 2.0),
    "C 3": (DEFAULT[0], {}, "svc", 3.0),
    "word 1 + charwb 2-5": (("word1", "charwb25"), {}, "svc", 1.0),
    "word 1-3 + charwb 2-5": (("word13", "charwb25"), {}, "svc", 1.0),
    "word 1-2 + charwb 2-6": (("word12", "charwb26"), {}, "svc", 1.0),
    "word 1-2 + charwb 3-6": (("word12", "charwb36"), {}, "svc", 1.0),
    "word 1-2 + charwb 1-5": (("word12", "charwb15"), {}, "svc", 1.0),
    "word 1-2 + char 2-5": (("word12", "char25"), {}, "svc", 1.0),
    "charwb 2-5 alone": (("charwb25",), {}, "svc", 1.0),
    "word 1-2 alone": (("word12",), {}, "svc", 1.0),
    "min_df 2": (DEFAULT[0], {"min_df": 2}, "svc", 1.0),
    "max_df 0.5": (DEFAULT[0], {"max_df": 0.5}, "svc", 1.0),
    "tf not sublinear": (DEFAULT[0], {"sublinear_tf": False}, "svc", 1.0),
    "no idf": (DEFAULT[0], {"use_idf": False}, "svc", 1.0),
    "prefix4 1-2 + charwb 2-5": (("prefix4", "charwb25"), {}, "svc", 1.0),
    "prefix5 1-2 + charwb 2-5": (("prefix5", "charwb25"), {}, "svc", 1.0),
    "prefix6 1-2 + charwb 2-5": (("prefix6", "charwb25"), {}, "svc", 1.0),
    "prefix7 1-2 + charwb 2-5": (("prefix7", "charwb25"), {}, "svc", 1.0),
    "word 1-2 + prefix5 1-2 + charwb 2-5": (("word12", "prefix5", "charwb25"), {}, "svc", 1.0),
    "word 1-2 + prefix5 1 + charwb 2-5": (("word12", "prefix5uni", "charwb25"), {}, "svc", 1.0),
    "word 1-2 + prefix5 1-2": (("word12", "prefix5"), {}, "svc", 1.0),
    "prefix5 1-2 alone": (("prefix5",), {}, "svc", 1.0),
    "NB-SVM (log-count ratio) C 1": (DEFAULT[0], {}, "nbsvm", 1.0),
    "NB-SVM (log-count ratio) C 0.3": (DEFAULT[0], {}, "nbsvm", 0.3),
    "SGD modified_huber": (DEFAULT[0], {}, "sgd", 1e-4),
    "LogisticRegression C 30": (DEFAULT[0], {}, "logreg", 30.0),
    "ridge (alpha 1)": (DEFAULT[0], {}, "ridge", 1.0),
    # The small gains above, combined.
    "C 10": (DEFAULT[0], {}, "svc", 10.0),
    "C 3 + max_df 0.5": (DEFAULT[0], {"max_df": 0.5}, "svc", 3.0),
    "prefix5 1-2 + charwb 2-5 C 3": (("prefix5", "charwb25"), {}, "svc", 3.0),
    "prefix5 1-2 + charwb 2-5 C 3 + max_df 0.5": (("prefix5", "charwb25"), {"max_df": 0.5}, "svc", 3.0),
    "word 1-2 + prefix5 1 + charwb 2-5 C 3": (("word12", "prefix5uni", "charwb25"), {}, "svc", 3.0),
    "word 1-2 + prefix5 1 + charwb 2-5 C 3 + max_df 0.5": (("word12", "prefix5uni", "charwb25"), {"max_df": 0.5}, "svc", 3.0),
}


def block(counts: Any, train: Any, options: dict[str, Any]) -> tuple[Any, Any]:
    """One analyzer's tf-idf rows for a fold, as a vectorizer fit on the fold's training rows gives them."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfTransformer

    df = np.asarray((counts[train] > 0).sum(0)).ravel()
    n = len(train)
    keep = df >= options.get("min_df", 1)
    if "max_df" in options:
        keep &= df <= options["max_df"] * n
    cols = np.flatnonzero(keep)
    weighting = TfidfTransformer(sublinear_tf=options.get("sublinear_tf", True), use_idf=options.get("use_idf", True))
    x = counts[:, cols]
    weighting.fit(x[train])
    return weighting.transform(x), cols.size


def classify(kind: str, c: float, x_train: Any, y_train: Any, x_test: Any, seed: int) -> Any:
    import numpy as np
    from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
    from sklearn.svm import LinearSVC

    if kind == "nbsvm":
        # One-vs-rest, each class's features scaled by its log-count ratio (Wang & Manning 2012).
        scores = []
        for label in np.unique(y_train):
            pos = np.asarray(x_train[y_train == label].sum(0)).ravel() + 1.0
            neg = np.asarray(x_train[y_train != label].sum(0)).ravel() + 1.0
            r = np.log((pos / pos.sum()) / (neg / neg.sum())).astype(np.float32)
            svm = LinearSVC(C=c, random_state=seed).fit(x_train.multiply(r).tocsr(), (y_train == label).astype(int))
            scores.append(svm.decision_function(x_test.multiply(r).tocsr()))
        return np.unique(y_train)[np.argmax(np.column_stack(scores), 1)]
    model = {"svc": lambda: LinearSVC(C=c, random_state=seed),
             "logreg": lambda: LogisticRegression(C=c, max_iter=2000, random_state=seed),
             "sgd": lambda: SGDClassifier(loss="modified_huber", alpha=c, max_iter=50, tol=None, random_state=seed),
             "ridge": lambda: RidgeClassifier(alpha=c, solver="sparse_cg")}[kind]()
    return model.fit(x_train, y_train).predict(x_test)


def main() -> int:
    import numpy as np
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.model_selection import RepeatedStratifiedKFold

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", help="comma-separated candidate names (defaults always runs)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    began = time.perf_counter()
    texts, labels, names = load()
    y = np.array(labels)
    print(f"train + val: {len(texts)} texts, {len(names)} labels ({time.perf_counter() - began:.1f} s)", flush=True)
    chosen = {"defaults", *(s.strip() for s in args.only.split(","))} if args.only else set(CANDIDATES)
    candidates = {k: v for k, v in CANDIDATES.items() if k in chosen}
    counts: dict[str, Any] = {}
    for name in sorted({a for c in candidates.values() for a in c[0]}):
        t = time.perf_counter()
        counts[name] = CountVectorizer(lowercase=False, dtype=np.float32, **ANALYZERS[name]).fit_transform(texts).tocsc()
        print(f"counts {name}: {counts[name].shape[1]} columns ({time.perf_counter() - t:.1f} s)", flush=True)
    folds = list(RepeatedStratifiedKFold(n_splits=args.folds, n_repeats=args.repeats, random_state=0).split(texts, y))

    # The shortcut gives what the worker's own pipeline gives, on the first fold.
    from makam_worker.contracts.hyperparameters import Hyperparameters
    from makam_worker.training.families.tfidf import pipeline_for

    train, test = folds[0]
    worker = pipeline_for(Hyperparameters(family="tfidf")).fit([texts[i] for i in train], y[train])
    expected = worker.predict([texts[i] for i in test])

    results: dict[str, list[float]] = {}
    for name, (analyzers, options, kind, c) in candidates.items():
        t = time.perf_counter()
        accuracy = []
        for f, (train, test) in enumerate(folds):
            blocks = [block(counts[a], train, options)[0] for a in analyzers]
            x = sp.hstack(blocks, format="csr", dtype=np.float32)
            predicted = classify(kind, c, x[train], y[train], x[test], 42)
            if name == "defaults" and f == 0:
                same = int((predicted == expected).sum())
                print(f"check: the shortcut agrees with pipeline_for on {same} of {len(test)} fold-0 texts", flush=True)
            accuracy.append(float((predicted == y[test]).mean()))
        results[name] = accuracy
        base = results["defaults"]
        diff = [a - b for a, b in zip(accuracy, base)]
        wins = sum(d > 0 for d in diff), sum(d < 0 for d in diff)
        print(f"{name:<40} {statistics.fmean(accuracy):.4f} ± {statistics.stdev(accuracy):.4f}   "
              f"vs defaults {statistics.fmean(diff):+.4f} ± {statistics.stdev(diff):.4f} "
              f"(better/worse folds {wins[0]}/{wins[1]})   {time.perf_counter() - t:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"folds": args.folds, "repeats": args.repeats, "accuracy": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
