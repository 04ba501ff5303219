"""The end of every run: the final metrics (the `finished` event's final_metrics), metrics.json,
the model card, the preprocessing files, and the packed artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from makam_worker.events import EventLog
from makam_worker.layout import RunPaths
from makam_worker.run_spec import ModelSpec, RunSpec
from makam_worker.training import artifact, export_onnx
from makam_worker.training.common import Log
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits
from makam_worker.training.textprep import OPTIONS

TEXTPREP = Path(__file__).with_name("textprep.py")
PREPARE = """\
import json, sys
sys.path.insert(0, d)
import textprep  # shipped in the artifact: the text preparation and truncation the model was trained with
texts = [textprep.prepare_text(t, **json.load(open(f"{d}/preprocessing.json"))) for t in texts]"""


TRUNCATION = {
    "head": "the first tokens of a longer text are kept",
    "tail": "the last tokens of a longer text are kept",
    "head+tail": "128 of every 510 tokens from the head of a longer text, the rest from its tail",
}


def final_metrics(
    hp: Hyperparameters, splits: Splits, *, best_epoch: int, epochs_trained: int, stopped_early: bool,
    best_row: dict[str, Any] | None, evaluation: dict[str, Any], throughput: dict[str, Any],
    refit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the API stores as the job's result. accuracy, weighted_f1, macro_f1 and
    majority_baseline_accuracy are those of the shipped model on `evaluated_on`: the best checkpoint,
    or the refit model (`refit`, refit.py) while the validation figures stay the first pass's."""
    return {
        "family": hp.family,
        "evaluated_on": evaluation["split"],
        "trained_on": refit["trained_on"] if refit else "train",
        "refit": refit,
        "accuracy": evaluation["accuracy"],
        "weighted_f1": evaluation["weighted_f1"],
        "macro_f1": evaluation["macro_f1"],
        "majority_baseline_accuracy": evaluation["majority_baseline_accuracy"],
        "best_epoch": best_epoch,
        "epochs_trained": epochs_trained,
        "stopped_early": stopped_early,
        "metric_for_best_model": hp.metric_for_best_model if hp.family != "tfidf" else None,
        "train_loss": best_row.get("train_loss") if best_row else None,
        "validation_loss": best_row.get("validation_loss") if best_row else None,
        "validation": best_row,
        "test": evaluation,
        "throughput": throughput,
        "data": splits.report,
        "train_examples": len(splits.train_texts),
        "validation_examples": len(splits.validation_texts),
        "test_examples": len(splits.test_texts),
    }


def finish(
    paths: RunPaths, spec: RunSpec, hp: Hyperparameters, splits: Splits, events: EventLog, log: Log, *,
    history: list[dict[str, Any]], best_epoch: int, best_row: dict[str, Any] | None, stopped_early: bool,
    evaluation: dict[str, Any], throughput: dict[str, Any], source: str, loading: str, model_info: dict[str, Any],
    refit: dict[str, Any] | None = None, onnx: dict[str, Any] | None = None, tracker: Any = None,
) -> dict[str, Any]:
    """Writes labels.json, metrics.json, preprocessing.json, textprep.py and README.md beside the
    model files already in paths.model, packs the artifact and returns the final metrics. `onnx` is
    export_onnx.export's result (metrics.json's `onnx` and the card's ONNX section); `tracker`
    (trackers.py) gets the final metrics and is closed before packing, so its files are packed."""
    summary = final_metrics(
        hp, splits, best_epoch=best_epoch, epochs_trained=len(history), stopped_early=stopped_early,
        best_row=best_row, evaluation=evaluation, throughput=throughput, refit=refit,
    )
    if hp.refit and refit is None:
        events.append("log", level="info", message=(  # info: tfidf refits by default
            "refit needs a test split to measure the refit model on: nothing was refit, the first model is shipped"))
    if evaluation["split"] == "validation":
        events.append("log", level="warning", message=(
            "no test split (give a test dataset or test_fraction > 0): the final figures are on the validation "
            "split that also chose the best epoch, so they are optimistic"))
    metrics = {
        "summary": summary,
        "history": history,
        "evaluation": evaluation,
        "per_class": evaluation["per_class"],
        "confusion_matrix": evaluation["confusion_matrix"],
        "labels": splits.label_names,
        "label_counts": splits.label_counts(),
        "majority_baseline_accuracy": evaluation["majority_baseline_accuracy"],
        "hyperparameters": hp.to_dict(),
        "data": splits.report,
        "throughput": throughput,
        "model": {"family": hp.family, "source": source, **model_info},
        **({"onnx": onnx} if onnx is not None else {}),
    }
    model_dir = paths.model
    model_dir.mkdir(parents=True, exist_ok=True)
    preprocessing = {name: getattr(hp, name) for name in OPTIONS}
    (model_dir / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2) + "\n")
    shutil.copyfile(TEXTPREP, model_dir / "textprep.py")
    card = model_card(spec.model, hp, splits, summary, source, loading,
                      max_length=model_info.get("max_length"), onnx=onnx)
    artifact.write_files(model_dir, splits.label_names, metrics, card)
    if tracker is not None:
        tracker.finish(summary, step=history[-1].get("step") or 0 if history else 0)
    digest = artifact.pack(paths)
    log.info("artifact packed: sha256 %s", digest)
    return summary


def _f(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def evaluation_rows(evaluation: dict[str, Any]) -> list[list[Any]]:
    """The model card's evaluation table (every family's card and the ensemble's)."""
    return [
        ["accuracy", evaluation["accuracy"]],
        ["macro F1 (over the labels in this split or predicted)", evaluation["macro_f1"]],
        ["weighted F1", evaluation["weighted_f1"]],
        [f"majority baseline accuracy (always {evaluation['majority_label']!r})", evaluation["majority_baseline_accuracy"]],
    ]


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(_f(v) for v in row) + " |" for row in rows),
    ]


def model_card(model_spec: ModelSpec, hp: Hyperparameters, splits: Splits, summary: dict[str, Any],
               source: str, loading: str, max_length: int | None = None, onnx: dict[str, Any] | None = None) -> str:
    evaluation = summary["test"]
    labels = splits.label_names
    split = summary["evaluated_on"]
    where = (f"the **{split}** split ({evaluation['examples']} examples), with the best checkpoint"
             if split == "test" else
             f"the **validation** split ({evaluation['examples']} examples): no test split was given or carved, "
             "and this split also chose the best epoch, so the figures are optimistic")
    counts = splits.label_counts()
    data = splits.report
    throughput = summary["throughput"]
    lines = [
        "# Text classifier trained by makam",
        "",
        f"- Family: {hp.family}",
        f"- Base model: {source}",
        f"- Labels ({len(labels)}): {', '.join(labels)}",
    ]
    if summary["refit"]:
        refit = summary["refit"]
        lines.append(f"- Trained on: {refit['trained_on']}, {refit['rows']} rows, for {refit['epochs']} epoch(s): "
                     "refit after the validation check, a fresh model with the same seed (the validation figures "
                     "are the first pass's; test stays unseen)")
    if hp.family != "tfidf":
        lines.append(
            f"- Best epoch: {summary['best_epoch']} of {summary['epochs_trained']} trained "
            f"(by validation {hp.metric_for_best_model}{'; stopped early' if summary['stopped_early'] else ''})"
        )
    lines += [
        "",
        "## Evaluation",
        "",
        f"On {where}.",
        "",
        *_table(["metric", "value"], evaluation_rows(evaluation)),
        "",
        "### Per class",
        "",
        *_table(["label", "precision", "recall", "F1", "support"], [
            [name, c["precision"], c["recall"], c["f1"], c["support"]] for name, c in evaluation["per_class"].items()
        ]),
        "",
        "### Confusion matrix (rows: true label, columns: predicted)",
        "",
        *_table(["true \\ predicted", *labels], [
            [name, *row] for name, row in zip(labels, evaluation["confusion_matrix"]["matrix"])
        ]),
        "",
        "## Data",
        "",
        *_table(["label", *counts], [[name, *(counts[s][name] for s in counts)] for name in labels]),
        "",
        f"- Splits: {', '.join(f'{k} {v}' for k, v in data['sources'].items())}",
        f"- Leaks (evaluation texts also in training): {', '.join(f'{k} {v}' for k, v in data['leaks'].items())}; "
        f"removed from evaluation: {', '.join(f'{k} {v}' for k, v in data['removed_from_evaluation'].items())}",
        f"- Text preparation: {', '.join(f'{k}={v}' for k, v in (data.get('preparation') or {}).items())} "
        "(textprep.py with preprocessing.json; apply it to raw text before predicting"
        + (", which the shipped tokenizer also does itself)" if hp.family == "scratch" else ")"),
        *([] if max_length is None else [
            f"- Truncation: {hp.truncation}, to {max_length} tokens with the special tokens "
            f"({TRUNCATION[hp.truncation]}): training and evaluation made their input with "
            "textprep.encode(tokenizer, texts, max_length, truncation), and so must predictions, as the loader "
            "below does" + ("; no tokenizer option keeps both ends" if hp.truncation == "head+tail" else "")]),
        "",
        "## Training throughput",
        "",
        f"- {throughput['samples_per_second']:.1f} samples/s, {throughput['tokens_per_second']:.0f} tokens/s, "
        f"{throughput['seconds']:.1f} s on {throughput['device']}; peak memory {throughput['peak_memory_bytes']} bytes "
        f"({throughput['peak_memory_measure']})",
        "",
        "## Hyperparameters",
        "",
        *(f"- {key}: {value}" for key, value in hp.to_dict().items()),
        "",
        *export_onnx.card_section(onnx, family=hp.family, max_length=max_length, truncation=hp.truncation),
        # PREPARE for scratch too: its tokenizer prepares again, which changes nothing, and encode is in textprep.
        *loading_section(PREPARE + "\n" + loading),
    ]
    return "\n".join(lines)


def loading_section(code: str) -> list[str]:
    """The card's last section, "## Loading" (every family's card and the ensemble's): `code` after the
    two placeholder lines a user fills in, `d` and `texts`; it must end by assigning the predicted labels."""
    return ["## Loading", "", "```python", 'd = "path/to/unpacked/model"', 'texts = ["..."]', code, "```", ""]
