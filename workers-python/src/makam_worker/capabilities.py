"""What this worker can train on: device, memory, families and library versions."""

from __future__ import annotations

import os
import platform
import importlib.util
from importlib.metadata import PackageNotFoundError, version

from makam.worker.v1 import worker_pb2
from makam_worker import __version__
from makam_worker.settings import worker_devices

FAMILIES = ("encoder", "decoder", "scratch", "tfidf")
MODEL_FREE = ("scratch", "tfidf")  # families that take no model.name or model.config


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _system_memory() -> tuple[int, int]:
    """(total, available) bytes; available from /proc/meminfo where there is one."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    available = total
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return total, available


def offered_devices() -> int:
    """Devices one run may ask for: MAKAM_WORKER_DEVICES, else every visible GPU, else 1."""
    import torch

    return worker_devices() or (torch.cuda.device_count() if torch.cuda.is_available() else 1)


def capabilities(worker_id: str, active_runs: int) -> worker_pb2.GetCapabilitiesResponse:
    import torch  # imported on first use: the server starts fast and only this call needs it

    response = worker_pb2.GetCapabilitiesResponse(
        worker_id=worker_id,
        families=list(FAMILIES),
        versions={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            "peft": _version("peft"),
            "sentencepiece": _version("sentencepiece"),
            "scikit-learn": _version("scikit-learn"),
            "makam_worker": __version__,
        },
        active_runs=active_runs,
        devices=offered_devices(),
    )
    if importlib.util.find_spec("bitsandbytes") is not None:
        response.versions["bitsandbytes"] = _version("bitsandbytes")
    # What a job's export_onnx and tracker can use here: listed only when they would work.
    from makam_worker.training import export_onnx, trackers

    if export_onnx.available():
        response.versions.update(onnx=_version("onnx"), onnxruntime=_version("onnxruntime"))
    if importlib.util.find_spec("tensorboard") is not None:
        response.versions["tensorboard"] = _version("tensorboard")
    if importlib.util.find_spec("wandb") is not None and trackers.wandb_import_error() is None:
        response.versions["wandb"] = _version("wandb")
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        response.device = "cuda"
        response.gpu_name = torch.cuda.get_device_name()
    else:
        total, free = _system_memory()
        response.device = "cpu"
    response.memory_total_bytes, response.memory_free_bytes = total, free
    return response
