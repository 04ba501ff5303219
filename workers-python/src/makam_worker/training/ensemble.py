"""An ensemble of finished jobs' models: nothing is trained but how their class probabilities combine.

The splits are carved exactly as the members carved theirs (the same data code and the first member's
data hyperparameters, which the API checked every member shares; each member's own label counts per
split and its text preparation are checked here too). Each member predicts probabilities on the
validation and test splits through ensemble_members.py, the file the artifact ships, so the report
and the downloaded artifact agree label for label. Then:

- `average`: each member's probabilities first get a temperature (softmax(log p / T), T fit on
  validation to maximise its log-likelihood, which leaves the member's predictions as they are), then
  non-negative weights summing to 1 that maximise the validation log-likelihood of their mean
  (scipy's SLSQP from equal weights). Without the temperatures a member's scale, not its accuracy,
  decided its weight: a tfidf LinearSVC's softmaxed margins are flat (mean top probability 0.50 at
  0.968 validation accuracy on TTC-3600), so it got weight 0 beside a sharper, less accurate
  scratch model. The validation figures are those of the temperatures and weights fit on that split.
- `stack`: a scikit-learn LogisticRegression on the members' validation probabilities side by side.
  Its validation figures are out-of-fold (stratified k-fold within validation, k up to 5), so they
  are honest; the stacker shipped is then fit on the whole validation split.

A member refit on train + validation saw the validation split, so its own probabilities there are
not what it would give unseen data. Such a member ships the probabilities its first model (trained
on train alone, chosen on validation) gave the validation split (first_pass.py's file,
tied to the split by a digest of its texts): the temperatures, weights or stacker are fit on those,
and the test split is predicted by the refit model the artifact holds, so the ensemble learns from
all the labelled data as its refit members do. The fit assumes the refit model's scale is its first
model's (same epochs, 1/(1 - validation share) more data). The test split, as everywhere, is read
once, for the report.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from makam_worker.contracts.hyperparameters import DATA_HYPERPARAMETERS
from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import EnsembleSpec, RunSpec
from makam_worker.training import artifact
from makam_worker.training import ensemble_members as members_lib
from makam_worker.training.common import Log, data_warnings
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits
from makam_worker.training.errors import TrainingError
from makam_worker.training.metrics import classification_metrics, evaluation_report
from makam_worker.training.first_pass import texts_digest
from makam_worker.training.report import TEXTPREP, _table, evaluation_rows, final_metrics, loading_section
from makam_worker.training.textprep import OPTIONS
from makam_worker.training.throughput import Meter

MEMBERS = Path(__file__).with_name("ensemble_members.py")
LOADING = """\
import sys
sys.path.insert(0, d)
import ensemble_members  # shipped in the artifact: loads each member as its card says and combines them
labels = ensemble_members.predict(d, texts)"""


def _unpack(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def _check_member(d: Path, job_id: str, splits: Splits, hp: Hyperparameters) -> dict[str, Any]:
    """The member's metrics.json, once its labels, split sizes per label and text preparation are
    those of this run (DATA_HYPERPARAMETERS, from the contract); else the run fails naming the member and what differs."""
    try:
        labels = json.loads((d / "labels.json").read_text(encoding="utf-8"))
        metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TrainingError("invalid_member", f"member {job_id}: not a makam model artifact ({e})") from None
    if labels != splits.label_names:
        raise TrainingError("invalid_member", f"member {job_id} has labels {labels}, the ensemble's data {splits.label_names}")
    if metrics.get("label_counts") != splits.label_counts():
        raise TrainingError("invalid_member", f"member {job_id} was trained and evaluated on other splits "
                            f"({metrics.get('label_counts')}) than the ensemble carves ({splits.label_counts()})")
    for name in DATA_HYPERPARAMETERS:
        if metrics["hyperparameters"].get(name) != getattr(hp, name):
            raise TrainingError("invalid_member", f"member {job_id} has {name} {metrics['hyperparameters'].get(name)!r}, "
                                f"the ensemble {getattr(hp, name)!r}: every member must share the data hyperparameters")
    return metrics


def _first_pass_validation(d: Path, job_id: str, refit: dict[str, Any], splits: Splits) -> np.ndarray:
    """A refit member's first model's validation probabilities (the file its artifact ships)."""
    name = refit.get("validation_probabilities")
    if not name or not (d / name).is_file():
        raise TrainingError("invalid_member", f"member {job_id} was refit on train + validation and its artifact "
                            "keeps no validation probabilities of its first model (a makam before they were kept): "
                            "its own validation predictions would fit the ensemble to texts it learnt; train it again, "
                            "or with refit false")
    if refit.get("validation_texts_sha256") != texts_digest(splits.validation_texts):
        raise TrainingError("invalid_member", f"member {job_id}'s first-model validation probabilities were read on "
                            "other validation texts than the ensemble carves")
    probabilities = np.load(d / name, allow_pickle=False)
    if probabilities.shape != (len(splits.validation_texts), len(splits.label_names)):
        raise TrainingError("invalid_member", f"member {job_id}'s {name} has shape {probabilities.shape}, expected "
                            f"{(len(splits.validation_texts), len(splits.label_names))}")
    return probabilities.astype(np.float64)


def fit_weights(probabilities: list[np.ndarray], labels: list[int]) -> list[float]:
    """Simplex weights maximising the mean log-likelihood of `labels` under the weighted mean."""
    from scipy.optimize import minimize

    k = len(probabilities)
    picked = np.stack([p[np.arange(len(labels)), labels] for p in probabilities], axis=1)  # (n, k)

    def loss(w: np.ndarray) -> float:
        return -float(np.mean(np.log(np.clip(picked @ w, 1e-12, None))))

    def grad(w: np.ndarray) -> np.ndarray:
        return -np.mean(picked / np.clip(picked @ w, 1e-12, None)[:, None], axis=0)

    # ftol far below SLSQP's default 1e-6: near equal weights the loss is flat enough that the default
    # stopped at the starting point, short of the optimum (on TTC-3600 seed 44, weights 0.5/0.5).
    found = minimize(loss, np.full(k, 1.0 / k), jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                     constraints=[{"type": "eq", "fun": lambda w: float(np.sum(w) - 1.0)}],
                     options={"ftol": 1e-12, "maxiter": 500})
    w = np.clip(found.x, 0.0, None)
    return [float(x) for x in w / w.sum()]


def fit_temperature(probabilities: np.ndarray, labels: list[int]) -> float:
    """The temperature T (0.01-100) whose calibrated(probabilities, T) maximises the mean log-likelihood of `labels`."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        picked = members_lib.calibrated(probabilities, float(np.exp(log_t)))[rows, labels]
        return -float(np.mean(np.log(np.clip(picked, 1e-12, None))))

    found = minimize_scalar(loss, bounds=(np.log(0.01), np.log(100.0)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


def fit_average(probabilities: list[np.ndarray], labels: list[int]) -> tuple[list[float], list[float]]:
    """(weights, temperatures) of method average: each member's temperature, then the weights of the
    calibrated members, all fit on `labels` (validation)."""
    temperatures = [fit_temperature(p, labels) for p in probabilities]
    weights = fit_weights([members_lib.calibrated(p, t) for p, t in zip(probabilities, temperatures)], labels)
    return weights, temperatures


def _stacker(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, random_state=seed)


def fit_stacker(probabilities: list[np.ndarray], labels: list[int], n_labels: int, seed: int) -> tuple[Any, np.ndarray]:
    """The stacker fit on all of validation, and out-of-fold validation probabilities (k-fold within
    validation) for an honest validation figure."""
    from collections import Counter

    from sklearn.model_selection import StratifiedKFold

    features = members_lib.stacked_features(probabilities)
    y = np.asarray(labels)
    smallest = min(Counter(labels).values())
    if smallest < 2 or len(set(labels)) < 2:
        raise TrainingError("invalid_dataset", "method stack fits its stacker by cross-validation within the "
                            "validation split, which needs at least 2 validation examples of each label present "
                            "and 2 labels; use method average or a larger validation split")
    out_of_fold = np.zeros((len(y), n_labels))
    for train, held in StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed).split(features, y):
        fold = _stacker(seed).fit(features[train], y[train])
        out_of_fold[np.ix_(held, fold.classes_)] = fold.predict_proba(features[held])
    return _stacker(seed).fit(features, y), out_of_fold


def _log_loss(probabilities: np.ndarray, labels: list[int]) -> float:
    return -float(np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))))


def train_ensemble(paths: RunPaths, spec: RunSpec, hp: Hyperparameters, splits: Splits, events: EventLog,
                   check_stop: Callable[[], None], log: Log) -> dict:
    ensemble: EnsembleSpec = spec.ensemble  # type: ignore[assignment]
    names = splits.label_names
    events.append("started", pid=os.getpid(), device="cpu", train_examples=len(splits.train_texts),
                  validation_examples=len(splits.validation_texts), test_examples=len(splits.test_texts),
                  total_steps=len(ensemble.members), labels=names)
    for note in data_warnings(hp, splits):
        events.append("log", level="warning", message=note)
    meter = Meter(None)
    meter.start()
    started = time.perf_counter()

    model_dir = paths.model
    if model_dir.exists():
        shutil.rmtree(model_dir)  # a rerun of the same run dir starts clean
    members: list[dict[str, Any]] = []
    validation: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for step, member in enumerate(ensemble.members, start=1):
        rel = f"members/{member.job_id}"
        d = model_dir / rel
        _unpack(member.artifact, d)
        metrics = _check_member(d, member.job_id, splits, hp)
        summary = metrics.get("summary") or {}
        refit = summary.get("refit")
        if refit:  # only with a test split: a run without one refits nothing
            validation.append(_first_pass_validation(d, member.job_id, refit, splits))
        else:
            validation.append(members_lib.member_probabilities(d, splits.validation_texts))
        test.append(members_lib.member_probabilities(d, splits.test_texts) if splits.has_test else validation[-1])
        members.append({"job_id": member.job_id, "path": rel, "family": metrics["model"]["family"],
                        "source": metrics["model"].get("source"), "refit": bool(refit),
                        "validation_accuracy": classification_metrics(
                            splits.validation_labels, validation[-1].argmax(1).tolist(), names)["accuracy"],
                        "test_accuracy": summary.get("accuracy") if summary.get("evaluated_on") == "test" else None})
        events.append("progress", epoch=1, step=step, total_steps=len(ensemble.members), train_loss=0.0, learning_rate=0.0)
        log.info("ensemble: member %s (%s) predicted", member.job_id, members[-1]["family"])
        check_stop()

    y_val = splits.validation_labels
    stacker = None
    temperatures = None
    if ensemble.method == "average":
        weights, temperatures = fit_average(validation, y_val)
        val_probabilities = members_lib.combine(
            {"method": "average", "weights": weights, "temperatures": temperatures, "labels": names}, validation)
        for m, w, t in zip(members, weights, temperatures):
            m["weight"], m["temperature"] = w, t
    else:
        weights = None
        stacker, val_probabilities = fit_stacker(validation, y_val, len(names), hp.seed)
    manifest = {"format": 1, "method": ensemble.method, "labels": names, "weights": weights,
                "temperatures": temperatures, "members": members}

    scores = classification_metrics(y_val, val_probabilities.argmax(1).tolist(), names)
    row = {"epoch": 1, "step": len(ensemble.members), "train_loss": None,
           "validation_loss": _log_loss(val_probabilities, y_val), "accuracy": scores["accuracy"],
           "weighted_f1": scores["weighted_f1"], "macro_f1": scores["macro_f1"]}
    events.append("metrics", **row)
    log.info("ensemble (%s): validation accuracy %.4f, macro F1 %.4f, weights %s, temperatures %s", ensemble.method,
             row["accuracy"], row["macro_f1"], weights, temperatures)

    if splits.has_test:
        split, y = "test", splits.test_labels
        probabilities = members_lib.combine(manifest, test, stacker)
    else:
        split, y, probabilities = "validation", y_val, val_probabilities
    evaluation = evaluation_report(split, y, probabilities.argmax(1).tolist(), names, splits.train_labels,
                                   _log_loss(probabilities, y))
    meter.seconds = time.perf_counter() - started
    meter.samples = len(ensemble.members) * (len(splits.validation_texts) + len(splits.test_texts))
    throughput = meter.report("cpu")
    check_stop()

    summary = final_metrics(hp, splits, best_epoch=1, epochs_trained=1, stopped_early=False, best_row=row,
                            evaluation=evaluation, throughput=throughput)
    summary.update(family="ensemble", metric_for_best_model=None,
                   ensemble={"method": ensemble.method, "weights": weights, "temperatures": temperatures, "members": members,
                             "validation_figures": "weights fit on validation" if ensemble.method == "average"
                             else "out-of-fold within validation"})
    if split == "validation":
        events.append("log", level="warning", message=(
            "no test split (give a test dataset or test_fraction > 0): the final figures are on the validation "
            "split that also fit the ensemble, so they are optimistic"))
    metrics = {
        "summary": summary, "history": [row], "evaluation": evaluation, "per_class": evaluation["per_class"],
        "confusion_matrix": evaluation["confusion_matrix"], "labels": names, "label_counts": splits.label_counts(),
        "majority_baseline_accuracy": evaluation["majority_baseline_accuracy"],
        "hyperparameters": {name: getattr(hp, name) for name in OPTIONS}, "data": splits.report,
        "throughput": throughput, "model": {"family": "ensemble", "method": ensemble.method},
        "ensemble": manifest,
    }
    (model_dir / "ensemble.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    if stacker is not None:
        import joblib

        joblib.dump(stacker, model_dir / "stacker.joblib")
    (model_dir / "preprocessing.json").write_text(json.dumps({n: getattr(hp, n) for n in OPTIONS}, indent=2) + "\n")
    shutil.copyfile(TEXTPREP, model_dir / "textprep.py")
    shutil.copyfile(MEMBERS, model_dir / "ensemble_members.py")
    artifact.write_files(model_dir, names, metrics, model_card(manifest, summary, splits))
    digest = artifact.pack(paths)
    log.info("artifact packed: sha256 %s", digest)
    return summary


def model_card(manifest: dict[str, Any], summary: dict[str, Any], splits: Splits) -> str:
    evaluation = summary["test"]
    labels = splits.label_names
    method = manifest["method"]
    how = ("each member's probabilities at a temperature (softmax(log p / T)), then averaged with non-negative "
           "weights summing to 1; both fit on the validation split to maximise its log-likelihood" if method == "average" else
           "a logistic regression on the members' probabilities side by side, fit on the validation split "
           "(its validation figures are out-of-fold, 5-fold within validation)")
    lines = [
        "# Ensemble of text classifiers trained by makam",
        "",
        f"- Method: {method}: {how}",
        f"- Labels ({len(labels)}): {', '.join(labels)}",
        "- A tfidf member with LinearSVC gives no probabilities: its decision_function scores go through a softmax",
        *(["- A refit member (trained on train + validation) is fit on the validation probabilities of its first model, "
           "trained on train alone, which its artifact keeps; its refit model predicts"]
          if any(m.get("refit") for m in manifest["members"]) else []),
        "",
        *_table(["member (job)", "family", "refit", "weight", "temperature", "validation accuracy", "its own test accuracy"], [
            [m["job_id"], m["family"], "yes" if m.get("refit") else "no", m.get("weight", "-"), m.get("temperature", "-"),
             m["validation_accuracy"], m["test_accuracy"] if m["test_accuracy"] is not None else "-"] for m in manifest["members"]]),
        "",
        "## Evaluation",
        "",
        f"On the **{summary['evaluated_on']}** split ({evaluation['examples']} examples).",
        "",
        *_table(["metric", "value"], [*evaluation_rows(evaluation), ["validation accuracy", summary["validation"]["accuracy"]]]),
        "",
        "### Per class",
        "",
        *_table(["label", "precision", "recall", "F1", "support"], [
            [name, c["precision"], c["recall"], c["f1"], c["support"]] for name, c in evaluation["per_class"].items()]),
        "",
        "### Confusion matrix (rows: true label, columns: predicted)",
        "",
        *_table(["true \\ predicted", *labels], [[name, *row] for name, row in zip(labels, evaluation["confusion_matrix"]["matrix"])]),
        "",
        "## Files",
        "",
        "- `members/<job id>/`: each member's own artifact, unchanged (its own model card inside)",
        "- `ensemble.json`: the method, the weights and temperatures and the members; `stacker.joblib` for method stack",
        "- `ensemble_members.py`, `textprep.py`, `preprocessing.json`: the loading code and the text preparation",
        "",
        *loading_section(LOADING),
    ]
    return "\n".join(lines)
