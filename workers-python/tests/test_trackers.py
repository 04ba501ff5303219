"""`tracker`: TensorBoard event files in the artifact, read back with TensorBoard's own reader
(EventAccumulator): the hyperparameters (hparams plugin), a train loss and learning rate per
optimizer step, the validation row per epoch, and the final metrics, equal to what the run's
events and metrics.json say. W&B: refused before training where wandb cannot import; its offline
run files are checked where it can.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import QUICK, SCRATCH, extract, jsonl, read_events, write_run_dir
from makam_worker.training.child import EXIT_FAILED, EXIT_OK, execute
from makam_worker.training.trackers import wandb_import_error

TINY_SCRATCH = {"layers": 1, "heads": 2, "d_model": 16, "ff_dim": 32, "vocab_size": 120, "max_length": 32}


def run(tmp_path, hp: dict, model: dict | None = None):
    run_dir = write_run_dir(tmp_path, "run", hp, model=model)
    code = execute(run_dir)
    return code, run_dir


def accumulator(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0, "tensorboard_text": 0})
    events.Reload()
    return events


def hparams(events) -> dict:
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return {k: json_format.MessageToDict(v) for k, v in start.session_start_info.hparams.items()}


def test_tensorboard_logs_hyperparameters_steps_epochs_and_the_final_report(tmp_path):
    hp = {**QUICK, **TINY_SCRATCH, "batch_size": 16, "tracker": "tensorboard"}
    code, run_dir = run(tmp_path, hp, SCRATCH)
    events = read_events(run_dir)
    assert code == EXIT_OK, events[-1]
    artifact = tmp_path / "downloaded"
    extract(run_dir / "model.tar.gz", artifact)  # the event files travel in the artifact
    board = accumulator(artifact / "tensorboard")
    scalars = board.Tags()["scalars"]

    total_steps = next(e for e in events if e["type"] == "started")["total_steps"]
    losses = board.Scalars("step/train_loss")
    assert [s.step for s in losses] == list(range(1, total_steps + 1))
    assert [s.step for s in board.Scalars("step/learning_rate")] == list(range(1, total_steps + 1))
    # The progress events average the steps since the last one; the first covers step 1 alone.
    first = next(e for e in events if e["type"] == "progress")
    assert first["step"] == 1 and losses[0].value == pytest.approx(first["train_loss"], rel=1e-5)

    rows = [e for e in events if e["type"] == "metrics"]
    assert len(rows) == QUICK["epochs"]
    for name in ("accuracy", "macro_f1", "validation_loss", "train_loss"):
        logged = board.Scalars(f"epoch/{name}")
        assert [(s.step, pytest.approx(s.value, rel=1e-5)) for s in logged] == [(r["step"], r[name]) for r in rows]

    summary = events[-1]["final_metrics"]
    for name in ("accuracy", "macro_f1", "weighted_f1", "majority_baseline_accuracy"):
        assert board.Scalars(f"final/{name}")[-1].value == pytest.approx(summary[name], rel=1e-5)
    assert "final/validation_accuracy" in scalars  # the evaluated split's report (no test split here)

    logged_hp = hparams(board)
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert set(logged_hp) == set(metrics["hyperparameters"])
    for key in ("learning_rate", "epochs", "d_model", "tracker", "export_onnx"):
        assert logged_hp[key] == metrics["hyperparameters"][key], key


def test_tfidf_logs_its_one_fit(tmp_path):
    code, run_dir = run(tmp_path, {"seed": 3, "tracker": "tensorboard"},
                        {"family": "tfidf", "name": "", "config": None, "tokenizer": None})
    events = read_events(run_dir)
    assert code == EXIT_OK, events[-1]
    board = accumulator(run_dir / "model" / "tensorboard")
    row = next(e for e in events if e["type"] == "metrics")
    assert [(s.step, pytest.approx(s.value)) for s in board.Scalars("epoch/accuracy")] == [(1, row["accuracy"])]
    assert board.Scalars("final/accuracy")[-1].value == pytest.approx(events[-1]["final_metrics"]["accuracy"])
    assert "step/train_loss" not in board.Tags()["scalars"]
    hyperparameters = json.loads((run_dir / "model" / "metrics.json").read_text())["hyperparameters"]
    assert hparams(board)["classifier"] == hyperparameters["classifier"]


def test_no_tracker_writes_no_event_files(tmp_path):
    code, run_dir = run(tmp_path, {"seed": 3}, {"family": "tfidf", "name": "", "config": None,
                                                                    "tokenizer": None})
    assert code == EXIT_OK
    assert not (run_dir / "model" / "tensorboard").exists()


@pytest.mark.skipif(wandb_import_error() is None, reason="wandb imports on this worker")
def test_wandb_that_cannot_import_fails_the_run_before_training_naming_the_field(tmp_path):
    code, run_dir = run(tmp_path, {**QUICK, "tracker": "wandb"})
    events = read_events(run_dir)
    assert code == EXIT_FAILED
    assert [e["type"] for e in events] == ["finished"]  # nothing started
    assert events[-1]["error_code"] == "tracker_unavailable"
    assert "tracker 'wandb'" in events[-1]["error_message"] and "use tracker 'tensorboard'" in events[-1]["error_message"]


@pytest.mark.skipif(wandb_import_error() is not None,
                    reason=f"wandb cannot be imported on this worker: {wandb_import_error()}")
def test_wandb_offline_run_files_hold_the_config_and_the_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-files"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    code, run_dir = run(tmp_path, {**QUICK, **TINY_SCRATCH, "tracker": "wandb"}, SCRATCH)
    events = read_events(run_dir)
    assert code == EXIT_OK, events[-1]
    runs = list((tmp_path / "wandb-files" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    import yaml

    config = yaml.safe_load((runs[0] / "files" / "config.yaml").read_text())
    assert config["learning_rate"]["value"] == QUICK["learning_rate"]
    summary = json.loads((runs[0] / "files" / "wandb-summary.json").read_text())
    assert summary["accuracy"] == pytest.approx(events[-1]["final_metrics"]["accuracy"])
    assert summary["epoch/accuracy"] == pytest.approx([e for e in events if e["type"] == "metrics"][-1]["accuracy"])
    assert os.environ["WANDB_MODE"] == "offline"


def test_capabilities_list_the_trackers_and_exports_this_worker_can_use():
    from importlib.metadata import version

    from makam_worker.capabilities import capabilities

    caps = capabilities("w", 0)
    assert ("wandb" in caps.versions) == (wandb_import_error() is None)
    assert caps.versions["tensorboard"] == version("tensorboard")
    assert caps.versions["onnxruntime"] == version("onnxruntime") and caps.versions["onnx"] == version("onnx")
