"""Training on CUDA, run where a GPU is present (`-m gpu`); skipped elsewhere."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from conftest import LABELS, LEARNS, extract, read_events, write_run_dir
from makam_worker.training.run import EXIT_OK, execute

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_trains_on_cuda_when_present_and_the_artifact_loads_on_cpu(tmp_path, monkeypatch):
    monkeypatch.delenv("MAKAM_WORKER_DEVICE")  # pick the device as a worker would
    run_dir = write_run_dir(tmp_path, "on-gpu", LEARNS)
    assert execute(run_dir) == EXIT_OK
    events = read_events(run_dir)
    assert events[0]["device"].startswith("cuda:")
    assert events[-1]["state"] == "SUCCEEDED" and events[-1]["final_metrics"]["accuracy"] > 0.6
    extract(run_dir / "model.tar.gz", tmp_path / "unpacked")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "unpacked")
    assert model.device.type == "cpu" and list(model.config.id2label.values()) == LABELS


def test_capabilities_report_the_gpu():
    from makam_worker.capabilities import capabilities

    caps = capabilities("w", 0)
    assert caps.device == "cuda" and caps.gpu_name
    assert caps.memory_total_bytes >= caps.memory_free_bytes > 0
