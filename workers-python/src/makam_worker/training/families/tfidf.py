"""The `tfidf` family, the honest floor: word (1..word_ngram_max) and char_wb
(char_ngram_min..char_ngram_max) TF-IDF features (sublinear tf) and a LinearSVC or
LogisticRegression, fit on the training split and checked on validation (the `metrics` event).

With a test split and `refit` (true by default for tfidf), the pipeline is then fit again on
training + validation, and that model is evaluated on test and exported (final_metrics.refit, as
refit.py reports a neural refit; its one fit counts as one epoch): nothing is chosen on validation
here (no epochs, fixed hyperparameters), so holding it out of the final fit would only waste data;
the test split stays unseen. With `refit: false` the first fit is evaluated on test; without a test
split it is evaluated on validation. Either way it is the one exported.

No torch. The artifact is model.joblib, a scikit-learn Pipeline whose predict() returns label names;
texts go in prepared by the shipped textprep.py (the vectorizers themselves do not lower-case, so
Turkish casing stays right).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import RunSpec
from makam_worker.training import export_onnx, report
from makam_worker.training import spans
from makam_worker.training.common import Log, data_warnings
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits
from makam_worker.training.metrics import classification_metrics, evaluation_report
from makam_worker.training.refit import merged, summary
from makam_worker.training.throughput import Meter

LOADING = """\
import joblib
pipeline = joblib.load(f"{d}/model.joblib")  # scikit-learn; predict() gives label names
labels = list(pipeline.predict(texts))"""


def pipeline_for(hp: Hyperparameters) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.svm import LinearSVC

    features = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, hp.word_ngram_max), sublinear_tf=True,
                                 lowercase=False, max_features=hp.max_features, dtype=_float32())),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(hp.char_ngram_min, hp.char_ngram_max),
                                 sublinear_tf=True, lowercase=False, max_features=hp.max_features, dtype=_float32())),
    ])
    if hp.classifier == "logreg":
        classifier = LogisticRegression(C=hp.C, max_iter=2000, random_state=hp.seed)
    else:
        classifier = LinearSVC(C=hp.C, random_state=hp.seed)
    return Pipeline([("features", features), ("classifier", classifier)])


def sample_weights(hp: Hyperparameters, names: list[str], labels: list[int]) -> Any:
    """class_weights as a weight per training example, which is what scikit-learn's class_weight does
    inside LinearSVC and LogisticRegression (it scales C per example). Given here rather than as
    class_weight because scikit-learn turns digit labels ("1", "2") into ints before looking them up
    in a class_weight map, and then refuses it. "balanced" is scikit-learn's formula, counted on the
    labels of this fit (the training split, or training + validation when refitting). None: unweighted."""
    import numpy as np

    if hp.class_weights is None:
        return None
    if hp.class_weights == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(labels)
        by_id = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=labels)))
    else:
        try:
            weights = hp.label_weights("class_weights", names) or {}
        except ValueError as e:
            from makam_worker.training.errors import TrainingError

            raise TrainingError("invalid_hyperparameters", str(e)) from None
        by_id = {i: float(weights.get(name, 1.0)) for i, name in enumerate(names)}
    return np.array([by_id[i] for i in labels], dtype=np.float64)


def _float32() -> Any:
    import numpy as np

    return np.float32


def train_tfidf(
    paths: RunPaths, spec: RunSpec, hp: Hyperparameters, splits: Splits, events: EventLog,
    check_stop: Callable[[], None], log: Log, tracker: Any = None,
) -> dict:
    import joblib
    from sklearn.metrics import log_loss

    if spec.model.name or spec.model.config:
        from makam_worker.training.errors import TrainingError

        raise TrainingError("invalid_model", "the tfidf family takes no model name or config: "
                            "its features and classifier come from the hyperparameters")
    names = splits.label_names
    events.append(
        "started", pid=os.getpid(), device="cpu", train_examples=len(splits.train_texts),
        validation_examples=len(splits.validation_texts), test_examples=len(splits.test_texts),
        total_steps=1, labels=names,
    )
    for note in data_warnings(hp, splits):
        events.append("log", level="warning", message=note)
    meter = Meter(None)
    meter.start()

    def fit(texts: list[str], labels: list[int]) -> Any:
        pipeline = pipeline_for(hp)
        started = time.perf_counter()
        pipeline.fit(texts, [names[i] for i in labels], classifier__sample_weight=sample_weights(hp, names, labels))
        meter.seconds += time.perf_counter() - started
        meter.samples += len(texts)
        meter.tokens += sum(len(t.split()) for t in texts)  # words, for tfidf
        check_stop()
        return pipeline

    with spans.phase("epoch", epoch=1):  # tfidf's one pass: features and the linear model
        pipeline = fit(splits.train_texts, splits.train_labels)
    events.append("progress", epoch=1, step=1, total_steps=1, train_loss=0.0, learning_rate=0.0)

    def predict(texts: list[str]) -> list[int]:
        index = {name: i for i, name in enumerate(names)}
        return [index[p] for p in pipeline.predict(texts)]

    def loss(texts: list[str], labels: list[int]) -> float | None:
        if hp.classifier != "logreg":
            return None  # LinearSVC gives no probabilities
        return float(log_loss([names[i] for i in labels], pipeline.predict_proba(texts), labels=list(pipeline.classes_)))

    with spans.phase("evaluation", epoch=1, split="validation"):
        val_pred = predict(splits.validation_texts)
    scores = classification_metrics(splits.validation_labels, val_pred, names)
    row = {"epoch": 1, "step": 1, "train_loss": None, "validation_loss": loss(splits.validation_texts, splits.validation_labels),
           "accuracy": scores["accuracy"], "weighted_f1": scores["weighted_f1"], "macro_f1": scores["macro_f1"]}
    events.append("metrics", **row)
    if tracker is not None:
        tracker.epoch(1, 1, row)
    log.info("tfidf: validation accuracy %.4f, macro F1 %.4f", row["accuracy"], row["macro_f1"])

    refitted = None
    if splits.has_test:
        if hp.refit:
            data = merged(splits)
            with spans.phase("refit", epochs=1):
                pipeline = fit(data.train_texts, data.train_labels)
            refitted = summary(splits, 1)
            log.info("tfidf: refit on training + validation for the test evaluation")
        split, texts, labels = "test", splits.test_texts, splits.test_labels
        with spans.phase("evaluation", split="test", final=True):
            predictions = predict(texts)
    else:
        split, texts, labels, predictions = "validation", splits.validation_texts, splits.validation_labels, val_pred
    evaluation = evaluation_report(split, labels, predictions, names, splits.train_labels, loss(texts, labels))
    throughput = meter.report("cpu")
    check_stop()

    paths.model.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, paths.model / "model.joblib")
    vocabulary = sum(len(t.vocabulary_) for _, t in pipeline.named_steps["features"].transformer_list)
    return report.finish(
        paths, spec, hp, splits, events, log,
        history=[row], best_epoch=1, best_row=row, stopped_early=False, evaluation=evaluation,
        throughput=throughput, source=f"TF-IDF (word 1-{hp.word_ngram_max}, char_wb {hp.char_ngram_min}-"
                                      f"{hp.char_ngram_max}) + {hp.classifier}",
        loading=LOADING, model_info={"features": vocabulary}, refit=refitted, tracker=tracker,
        onnx=export_onnx.unavailable(export_onnx.tfidf_reason()) if hp.export_onnx else None,
    )
