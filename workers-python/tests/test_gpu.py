"""Training on CUDA, run where a GPU is present (`-m gpu`); skipped elsewhere."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from conftest import LABELS, LEARNS, SCRATCH, TINY_LLAMA, extract, read_events, write_run_dir
from makam_worker.training.child import EXIT_OK, execute

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


TINY_SCRATCH = {**LEARNS, "epochs": 10, "layers": 2, "heads": 2, "d_model": 32, "ff_dim": 64, "vocab_size": 200}


@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_scratch_trains_on_cuda_in_mixed_precision(tmp_path, monkeypatch, precision):
    monkeypatch.delenv("MAKAM_WORKER_DEVICE")
    run_dir = write_run_dir(tmp_path, f"scratch-{precision}", {**TINY_SCRATCH, "precision": precision}, model=SCRATCH)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    summary = read_events(run_dir)[-1]["final_metrics"]
    throughput = summary["throughput"]
    assert throughput["precision"] == ("bf16" if precision == "auto" and torch.cuda.is_bf16_supported() else
                                       "fp32" if precision == "auto" else "fp16")
    assert throughput["peak_memory_measure"] == "cuda_max_memory_allocated" and throughput["peak_memory_bytes"] > 0
    assert summary["accuracy"] > 0.6
    extract(run_dir / "model.tar.gz", tmp_path / "unpacked")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "unpacked", trust_remote_code=True)
    assert model.device.type == "cpu" and list(model.config.id2label.values()) == LABELS


def test_decoder_lora_trains_on_cuda_in_bf16_with_checkpointing(tmp_path, monkeypatch):
    monkeypatch.delenv("MAKAM_WORKER_DEVICE")
    model = {"family": "decoder", "name": "", "config": dict(TINY_LLAMA), "tokenizer": {"vocab_size": 400}}
    hp = {**LEARNS, "epochs": 5, "learning_rate": 5e-3, "gradient_checkpointing": True}
    run_dir = write_run_dir(tmp_path, "decoder", hp, model=model)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    metrics = read_events(run_dir)[-1]["final_metrics"]
    assert metrics["throughput"]["device"].startswith("cuda:")
    extract(run_dir / "model.tar.gz", tmp_path / "unpacked")
    assert (tmp_path / "unpacked" / "adapter_config.json").is_file() and (tmp_path / "unpacked" / "base").is_dir()
