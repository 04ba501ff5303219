"""Issue 10 on the worker: a model is checked on the meta device before anything is allocated
(`does_not_fit` with the figures), and `model.name` reads only the Hugging Face cache or a directory
under the operator's model roots, one answer for every path it refuses."""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path

import pytest
from conftest import EXAMPLES, LABELS, QUICK, TINY_BERT, read_events, write_run_dir

from makam_worker.training.errors import TrainingError
from makam_worker.training.model_limits import resolve_model_name
from makam_worker.training.child import EXIT_FAILED, EXIT_OK, execute

ONE_EPOCH = {**QUICK, "epochs": 1}


def save_tiny_model(directory: Path) -> Path:
    """An untrained tiny BERT with its tokenizer, as a model directory on disk."""
    from transformers import AutoModelForSequenceClassification, BertConfig

    from makam_worker.training.families.encoder import train_wordpiece

    tokenizer = train_wordpiece([e["text"] for e in EXAMPLES], {"vocab_size": 300, "min_frequency": 0})
    fields = {k: v for k, v in TINY_BERT.items() if k != "model_type"}
    model = AutoModelForSequenceClassification.from_config(BertConfig(**fields, vocab_size=len(tokenizer), num_labels=len(LABELS)))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def outside_model(tmp_path_factory) -> Path:
    """Another tenant's model directory: real, loadable, and outside every model root."""
    return save_tiny_model(tmp_path_factory.mktemp("tenant-b") / "model")


def finished(run_dir: Path) -> dict:
    return read_events(run_dir)[-1]


def test_a_run_larger_than_the_workers_memory_fails_does_not_fit_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKAM_WORKER_MEMORY_BYTES", str(64 << 20))
    run_dir = write_run_dir(tmp_path, "small-worker", ONE_EPOCH)
    assert execute(run_dir) == EXIT_FAILED
    end = finished(run_dir)
    assert (end["error_code"], end["retryable"]) == ("does_not_fit", False), end
    assert "parameters" in end["error_message"] and "GiB" in end["error_message"], end["error_message"]
    assert "MAKAM_WORKER_MEMORY_BYTES" in end["error_message"]
    assert not any(e["type"] in ("progress", "epoch") for e in read_events(run_dir)), "nothing was trained"


def test_a_config_of_billions_of_parameters_is_counted_on_meta_and_refused_without_allocating(tmp_path, monkeypatch):
    # The lie: a tiny BERT with type_vocab_size 50,000,000 (here 32 wide: 1.6 B parameters, 6.4 GB of fp32 weights).
    monkeypatch.setenv("MAKAM_WORKER_MEMORY_BYTES", str(8 << 30))
    spec = {"family": "encoder", "name": "", "config": {**TINY_BERT, "type_vocab_size": 50_000_000}, "tokenizer": {"vocab_size": 300}}
    run_dir = write_run_dir(tmp_path, "huge", ONE_EPOCH, model=spec)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert execute(run_dir) == EXIT_FAILED
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    end = finished(run_dir)
    assert end["error_code"] == "does_not_fit", end
    counted = int(re.search(r"has ([\d,]+) parameters", end["error_message"]).group(1).replace(",", ""))
    assert 50_000_000 * 32 < counted < 50_000_000 * 32 + 200_000, end["error_message"]
    assert grown_kib < 1 << 20, f"the run grew by {grown_kib} KiB: it allocated the model"


def test_a_named_models_config_is_checked_before_it_is_loaded(tmp_path, monkeypatch):
    root = tmp_path / "models"
    save_tiny_model(root / "tiny")
    monkeypatch.setenv("MAKAM_MODEL_ROOTS", str(root))
    monkeypatch.setenv("MAKAM_WORKER_MEMORY_BYTES", str(64 << 20))
    spec = {"family": "encoder", "name": str(root / "tiny"), "config": None, "tokenizer": None}
    run_dir = write_run_dir(tmp_path, "named", ONE_EPOCH, model=spec)
    assert execute(run_dir) == EXIT_FAILED
    assert finished(run_dir)["error_code"] == "does_not_fit"


def test_a_model_under_a_root_trains(tmp_path, monkeypatch):
    root = tmp_path / "models"
    save_tiny_model(root / "tiny")
    monkeypatch.setenv("MAKAM_MODEL_ROOTS", f"/nonexistent-root:{root}")
    spec = {"family": "encoder", "name": f"{root}//tiny/", "config": None, "tokenizer": None}
    run_dir = write_run_dir(tmp_path, "rooted", ONE_EPOCH, model=spec)
    assert execute(run_dir) == EXIT_OK, finished(run_dir)


def test_another_tenants_model_outside_the_roots_is_not_found(tmp_path, monkeypatch, outside_model):
    monkeypatch.setenv("MAKAM_MODEL_ROOTS", str(tmp_path / "models"))
    spec = {"family": "encoder", "name": str(outside_model), "config": None, "tokenizer": None}
    run_dir = write_run_dir(tmp_path, "stolen", ONE_EPOCH, model=spec)
    assert execute(run_dir) == EXIT_FAILED
    end = finished(run_dir)
    assert (end["error_code"], end["retryable"]) == ("model_not_found", False), end


def test_a_hub_id_is_never_read_from_the_working_directory(tmp_path, monkeypatch, outside_model):
    # A directory named like the id, where the worker runs: transformers would take it for the model.
    import shutil

    shutil.copytree(outside_model, tmp_path / "cwd" / "someorg" / "tiny-bert")
    monkeypatch.chdir(tmp_path / "cwd")
    spec = {"family": "encoder", "name": "someorg/tiny-bert", "config": None, "tokenizer": None}
    run_dir = write_run_dir(tmp_path / "runs", "by-id", ONE_EPOCH, model=spec)
    assert execute(run_dir) == EXIT_FAILED
    end = finished(run_dir)
    assert end["error_code"] == "model_not_found", end
    assert Path.cwd() == tmp_path / "cwd", "the working directory is restored"


def test_every_refused_path_reads_the_same_whether_it_exists_or_not(tmp_path, outside_model):
    root = tmp_path / "models"
    save_tiny_model(root / "tiny")
    (root / "link").symlink_to(outside_model)  # inside the root by name, outside it in fact
    (root / "etc").symlink_to("/etc")
    names = ["/etc", "/no/such/dir", str(outside_model), f"{root}/missing", f"{root}/../{outside_model.parent.name}",
             f"{root}/./tiny/../../etc", f"{root}/link", f"{root}/etc", f"{root}", "etc/../../x", "./tiny", "relative/dir/x"]
    messages = set()
    for name in names:
        with pytest.raises(TrainingError) as refused:
            resolve_model_name(name, [os.path.realpath(root)])
        assert refused.value.code == "model_not_found", name
        messages.add(refused.value.message.replace(repr(name), "NAME"))
    assert len(messages) == 1, messages
    assert resolve_model_name(f"{root}/tiny", [os.path.realpath(root)]).location == os.path.realpath(root / "tiny")
    # A root that is itself a symlink (/models -> /mnt/models) holds its models by either name.
    (tmp_path / "alias").symlink_to(root)
    assert resolve_model_name(f"{tmp_path}/alias/tiny", [f"{tmp_path}/alias"]).location == os.path.realpath(root / "tiny")
    with pytest.raises(TrainingError):
        resolve_model_name(f"{tmp_path}/alias/link", [f"{tmp_path}/alias"])
    assert resolve_model_name("dbmdz/bert-base-turkish-cased", []).hub


def test_bad_settings_are_named():
    from makam_worker.training.model_limits import check_settings

    with pytest.raises(ValueError, match="MAKAM_MODEL_ROOTS"):
        check_settings({"MAKAM_MODEL_ROOTS": "models:/srv"})
    with pytest.raises(ValueError, match="MAKAM_MODEL_ROOTS"):
        check_settings({"MAKAM_MODEL_ROOTS": "/srv/../etc"})
    with pytest.raises(ValueError, match="MAKAM_WORKER_MEMORY_BYTES"):
        check_settings({"MAKAM_WORKER_MEMORY_BYTES": "4GiB"})
    check_settings({"MAKAM_MODEL_ROOTS": "/srv/models:/data", "MAKAM_WORKER_MEMORY_BYTES": "4294967296"})


def test_a_hub_id_loads_from_the_hugging_face_cache(tmp_path, monkeypatch, outside_model):
    import shutil

    from huggingface_hub import constants

    # The cache as huggingface_hub lays it out: refs/main names the snapshot holding the files.
    cache = tmp_path / "hf" / "hub"
    repo = cache / "models--someorg--tiny-bert"
    shutil.copytree(outside_model, repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    # An impostor of the same name where the worker runs is never looked at.
    (tmp_path / "cwd" / "someorg" / "tiny-bert").mkdir(parents=True)
    (tmp_path / "cwd" / "someorg" / "tiny-bert" / "config.json").write_text("not a config")
    monkeypatch.chdir(tmp_path / "cwd")
    spec = {"family": "encoder", "name": "someorg/tiny-bert", "config": None, "tokenizer": None}
    run_dir = write_run_dir(tmp_path / "runs", "from-cache", ONE_EPOCH, model=spec)
    assert execute(run_dir) == EXIT_OK, finished(run_dir)


def test_the_worker_refuses_to_start_with_a_bad_model_root(tmp_path, monkeypatch):
    from makam_worker.server import main

    monkeypatch.setenv("MAKAM_MODEL_ROOTS", "relative/models")
    assert main(["--listen", "127.0.0.1:0", "--state-dir", str(tmp_path)]) == 2
