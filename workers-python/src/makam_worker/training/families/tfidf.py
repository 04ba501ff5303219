"""The `tfidf` family, the honest floor: word (1..word_ngram_max) and char_wb
(char_ngram_min..char_ngram_max) TF-IDF features (sublinear tf) and a LinearSVC or
LogisticRegression, fit on the training split and checked on validation (the `metrics` event).

With a test split and `refit` (true by default for tfidf), the pipeline is then fit again on
training + validation, and that model is evaluated on test and exported (final_metrics.refit, as
refit.py reports a neural refit; its one fit counts as one epoch): nothing is chosen on validation
here (no epochs, fixed hyperparameters), so holding it out of the final fit would only waste data;
the test split stays unseen. With `refit: false` the first fit is evaluated on test; without a test
split it is evaluated on validation. Either way it is the one exported.

For imbalanced data: `class_weights` weigh the training examples per label; `decision_offsets`
adds per-label offsets, chosen to maximise macro F1, to the decision scores (in the classifier's
intercepts, so the shipped Pipeline predicts with them). `validation` fits them on the first model's
validation scores; `cross_fit` on out-of-fold scores over training + validation (k stratified folds,
each scored by a model fit on the others; never the test split), so every example of a rare label
informs them, not only the few the validation split holds. The validation figures reported stay those
before the offsets; the shipped model (the first, or the refit) gets the offsets as fit.

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
from makam_worker.training.ensemble_members import pipeline_probabilities
from makam_worker.training.first_pass import FIRST_PASS_VALIDATION, keep_first_pass
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

    if hp.term_weighting == "binary":
        weighting: dict[str, Any] = {"binary": True, "use_idf": False, "norm": None}
    else:
        weighting = {"sublinear_tf": True}
    features = FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, hp.word_ngram_max), **weighting,
                                 lowercase=False, max_features=hp.max_features, dtype=_float32())),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(hp.char_ngram_min, hp.char_ngram_max),
                                 **weighting, lowercase=False, max_features=hp.max_features, dtype=_float32())),
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


def decision_scores(pipeline: Any, texts: list[str]) -> Any:
    """The classifier's scores as an (n, classes) matrix in classes_ order; a binary classifier's
    one column s becomes [0, s], whose argmax is its predict()."""
    import numpy as np

    s = np.asarray(pipeline.decision_function(texts), dtype=np.float64)
    return np.column_stack([np.zeros_like(s), s]) if s.ndim == 1 else s


def macro_f1(references: Any, predictions: Any) -> float:
    """metrics.classification_metrics' macro F1 (over the labels referenced or predicted), in numpy:
    the offset search calls it thousands of times."""
    import numpy as np

    present = np.union1d(references, predictions)
    f1 = []
    for c in present:
        tp = np.sum((predictions == c) & (references == c))
        wrong = np.sum(predictions == c) + np.sum(references == c) - 2 * tp
        f1.append(2 * tp / (2 * tp + wrong) if tp else 0.0)
    return float(np.mean(f1))


def fit_offsets(scores: Any, references: Any, rounds: int = 5) -> Any:
    """Per-class additions to the decision scores that maximise macro F1 on `references` (the
    validation split: indices into the score columns, -1 for a label the classifier never saw).
    Coordinate ascent, one class at a time, over every offset that changes a prediction (the midpoints
    between the points where an example changes class), until a round changes nothing; among equal
    F1s the offset nearest 0 wins, so a class the split cannot tell about keeps its score as it was."""
    import numpy as np

    n, k = scores.shape
    offsets = np.zeros(k)
    best = macro_f1(references, (scores + offsets).argmax(1))
    for _ in range(rounds):
        moved = False
        for c in range(k):
            shifted = scores + offsets
            shifted[:, c] = -np.inf
            rival = shifted.argmax(1)
            flips = shifted.max(1) - scores[:, c]  # class c wins an example once its offset passes its flip
            points = np.unique(flips[np.isfinite(flips)])  # -inf scores: a fold model without class c
            if points.size == 0:
                continue
            candidates = np.concatenate([[points[0] - 1.0], (points[:-1] + points[1:]) / 2, [points[-1] + 1.0]])
            figure, _, chosen = max((macro_f1(references, np.where(o > flips, c, rival)), -abs(o), o) for o in candidates)
            if figure > best + 1e-12:
                best, offsets[c], moved = figure, chosen, True
        if not moved:
            break
    return offsets


def offsets_from_validation(pipeline: Any, splits: Splits, names: list[str]) -> Any:
    """fit_offsets on the validation split's scores, in the classifier's classes_ order."""
    import numpy as np

    column = {name: i for i, name in enumerate(pipeline.classes_)}
    references = np.array([column.get(names[i], -1) for i in splits.validation_labels])
    return fit_offsets(decision_scores(pipeline, splits.validation_texts), references)


CROSS_FIT_FOLDS = 5


def cross_fit_folds(labels: list[int]) -> int:
    """How many folds cross_fit uses: CROSS_FIT_FOLDS, fewer when a label has fewer examples (so each
    fold holds out at most one of them and every fold model still sees the label), at least 2."""
    from collections import Counter

    return max(2, min(CROSS_FIT_FOLDS, min(Counter(labels).values())))


def out_of_fold_scores(fit: Callable[[list[str], list[int]], Any], texts: list[str], labels: list[int],
                       names: list[str], seed: int) -> Any:
    """Decision scores for every example, each from a model fit on the other folds (stratified, seeded),
    as an (n, len(names)) matrix in label-id order; a label a fold model never saw scores -inf there."""
    import warnings

    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    scores = np.full((len(texts), len(names)), -np.inf)
    folds = StratifiedKFold(n_splits=cross_fit_folds(labels), shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a label with one example: scikit-learn warns; that fold lacks it
        warnings.simplefilter("ignore", UserWarning)
        split = list(folds.split(np.zeros(len(labels)), labels))
    column = {name: i for i, name in enumerate(names)}
    for kept, held in split:
        model = fit([texts[i] for i in kept], [labels[i] for i in kept])
        fold_scores = decision_scores(model, [texts[i] for i in held])
        for j, label in enumerate(model.classes_):
            scores[held, column[label]] = fold_scores[:, j]
    return scores


def offsets_from_cross_fit(fit: Callable[[list[str], list[int]], Any], splits: Splits, names: list[str],
                           seed: int) -> Any:
    """fit_offsets on out-of-fold scores over training + validation, by label name order (names)."""
    import numpy as np

    data = merged(splits)
    scores = out_of_fold_scores(fit, data.train_texts, data.train_labels, names, seed)
    return fit_offsets(scores, np.array(data.train_labels))


def aligned(offsets: Any, classes: Any, to: Any) -> Any:
    """Offsets by label from one fit's classes_ to another's (a label new to the refit gets 0)."""
    import numpy as np

    by_label = dict(zip(list(classes), offsets))
    return np.array([by_label.get(label, 0.0) for label in to])


def shift_intercepts(pipeline: Any, offsets: Any) -> None:
    """Adds the offsets to the classifier's intercepts, so the shipped plain scikit-learn Pipeline
    predicts with them (and its decision_function, predict_proba and ensemble scores agree)."""
    classifier = pipeline.named_steps["classifier"]
    if classifier.intercept_.shape[0] == 1:  # binary: one score s, class 1 when s > 0
        classifier.intercept_ = classifier.intercept_ + (offsets[1] - offsets[0])
    else:
        classifier.intercept_ = classifier.intercept_ + offsets


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

    # The offsets as fit, by label (fit_labels), and as applied to the shipped model's classes_ (offsets).
    offsets, fitted, fit_labels, folds = None, None, list(pipeline.classes_), None
    if hp.decision_offsets == "validation":
        offsets = offsets_from_validation(pipeline, splits, names)
        fitted = offsets
    elif hp.decision_offsets == "cross_fit":
        folds = cross_fit_folds(merged(splits).train_labels)
        with spans.phase("cross_fit", folds=folds):
            fitted, fit_labels = offsets_from_cross_fit(fit, splits, names, hp.seed), list(names)
        offsets = aligned(fitted, fit_labels, pipeline.classes_)
    if offsets is not None:
        shift_intercepts(pipeline, offsets)
        val_pred = predict(splits.validation_texts)
        shown = ", ".join(f"{label} {value:+.3f}" for label, value in zip(pipeline.classes_, offsets))
        # The metrics row above stays the honest one: the validation split's labels chose these offsets.
        log.info("tfidf: decision offsets fit on %s (%s): validation macro F1 with them %.4f (optimistic: "
                 "its labels took part)", hp.decision_offsets, shown,
                 classification_metrics(splits.validation_labels, val_pred, names)["macro_f1"])

    refitted = None
    if splits.has_test:
        if hp.refit:
            # The first model's validation probabilities, kept for ensembles (first_pass.py).
            first_pass = pipeline_probabilities(pipeline, names, splits.validation_texts)
            data = merged(splits)
            with spans.phase("refit", epochs=1):
                pipeline = fit(data.train_texts, data.train_labels)
            if offsets is not None:
                # No split is left to fit them on again without touching test; the study behind this
                # option applied offsets from a smaller fit to a larger one and they kept their gain.
                offsets = aligned(fitted, fit_labels, pipeline.classes_)
                shift_intercepts(pipeline, offsets)
            paths.model.mkdir(parents=True, exist_ok=True)
            refitted = summary(splits, 1, **keep_first_pass(paths.model / FIRST_PASS_VALIDATION, first_pass, splits))
            log.info("tfidf: refit on training + validation for the test evaluation")
        split, texts, labels = "test", splits.test_texts, splits.test_labels
        with spans.phase("evaluation", split="test", final=True):
            predictions = predict(texts)
    else:
        split, texts, labels, predictions = "validation", splits.validation_texts, splits.validation_labels, val_pred
        if offsets is not None:
            events.append("log", level="warning", message=(
                f"decision_offsets: without a test split the final figures are read on the validation split "
                f"whose labels the offsets were fit on ({hp.decision_offsets}), so they are optimistic; give a "
                f"test split for an honest figure"))
    evaluation = evaluation_report(split, labels, predictions, names, splits.train_labels, loss(texts, labels))
    throughput = meter.report("cpu")
    check_stop()

    paths.model.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, paths.model / "model.joblib")
    vocabulary = sum(len(t.vocabulary_) for _, t in pipeline.named_steps["features"].transformer_list)
    offsets_info = {} if offsets is None else {
        "decision_offsets": {str(label): float(v) for label, v in zip(pipeline.classes_, offsets)},
        "decision_offsets_fit_on": hp.decision_offsets, **({} if folds is None else {"decision_offsets_folds": folds})}
    return report.finish(
        paths, spec, hp, splits, events, log,
        history=[row], best_epoch=1, best_row=row, stopped_early=False, evaluation=evaluation,
        throughput=throughput, source=f"TF-IDF (word 1-{hp.word_ngram_max}, char_wb {hp.char_ngram_min}-"
                                      f"{hp.char_ngram_max}, {hp.term_weighting}) + {hp.classifier}"
                                      + ("" if offsets is None else f" + decision offsets fit on {hp.decision_offsets}"),
        loading=LOADING, model_info={"features": vocabulary, **offsets_info}, refit=refitted, tracker=tracker,
        onnx=export_onnx.unavailable(export_onnx.tfidf_reason()) if hp.export_onnx else None,
    )
