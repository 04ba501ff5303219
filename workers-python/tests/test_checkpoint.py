"""Checkpoints and resume, in this process through `execute`: a run stopped after epoch K and resumed
from its checkpoint in a new run dir ends exactly as a run never stopped (the same metrics and the
same exported weights, bit for bit on CPU), numbering epochs and steps as the stopped run did."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import EXAMPLES, LEARNS, SCRATCH, TINY_LLAMA, jsonl, model_spec, read_events, write_run_dir
from makam_worker.training.child import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, execute

EPOCHS, K = 6, 3
RUNS = {
    "encoder": (model_spec(), {**LEARNS, "epochs": EPOCHS}),
    "scratch": (dict(SCRATCH),
                {**LEARNS, "epochs": EPOCHS, "layers": 2, "heads": 2, "d_model": 32, "ff_dim": 64, "vocab_size": 200}),
    "decoder": ({"family": "decoder", "name": "", "config": dict(TINY_LLAMA), "tokenizer": {"vocab_size": 400}},
                {**LEARNS, "epochs": EPOCHS, "learning_rate": 5e-3, "lora_r": 4}),
}
WEIGHTS = {"encoder": "model.safetensors", "scratch": "model.safetensors", "decoder": "adapter_model.safetensors"}


def same(a, b) -> bool:
    """Equal, tensors bit for bit, through dicts, lists and tuples."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def of_type(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["type"] == kind]


def stop_after_checkpoints(run_dir: Path, k: int):
    """A should_stop that asks the run to stop once its k-th checkpoint event is written."""
    return lambda: len(of_type(run_dir, "checkpoint")) >= k if (run_dir / "events.jsonl").exists() else False


def resume_from(root: Path, name: str, checkpoint: Path, hp: dict, model: dict, **kwargs) -> Path:
    """A new run dir as StartRun makes it for a resume: the checkpoint moved in as resume.tar."""
    run_dir = write_run_dir(root, name, hp, model=model, **kwargs)
    shutil.copyfile(checkpoint, run_dir / "resume.tar")
    spec = json.loads((run_dir / "spec.json").read_text())
    spec["resume_checkpoint_sha256"] = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    (run_dir / "spec.json").write_text(json.dumps(spec))
    return run_dir


def whole_stopped_resumed(root: Path, model: dict, hp: dict) -> tuple[Path, Path, Path]:
    """An uninterrupted run, one stopped after epoch K, and that one resumed in a new run dir."""
    whole = write_run_dir(root, "whole", hp, model=model)
    assert execute(whole) == EXIT_OK, read_events(whole)[-1]
    stopped = write_run_dir(root, "stopped", hp, model=model)
    assert execute(stopped, should_stop=stop_after_checkpoints(stopped, K)) == EXIT_CANCELLED
    resumed = resume_from(root, "resumed", stopped / "checkpoint.tar", hp, model)
    assert execute(resumed) == EXIT_OK, read_events(resumed)[-1]
    return whole, stopped, resumed


@pytest.fixture(scope="module", params=list(RUNS))
def runs(request, tmp_path_factory):
    family = request.param
    model, hp = RUNS[family]
    return family, *whole_stopped_resumed(tmp_path_factory.mktemp(f"resume-{family}"), model, hp)


def test_a_checkpoint_is_saved_after_every_epoch_and_announced_once_whole(runs):
    _, whole, stopped, _ = runs
    events = read_events(whole)
    checkpoints = of_type(whole, "checkpoint")
    metrics = of_type(whole, "metrics")
    assert [(c["epoch"], c["step"]) for c in checkpoints] == [(m["epoch"], m["step"]) for m in metrics]
    # Each checkpoint event follows its epoch's metrics and comes before the next epoch's progress.
    kinds = [e["type"] for e in events if e["type"] in {"metrics", "checkpoint"}]
    assert kinds == ["metrics", "checkpoint"] * EPOCHS
    assert not list(whole.glob(".*.tmp")) and not (whole / "work" / ".state.pt").exists()

    # The stopped run: K checkpoints, no end; its file is epoch K's and its record names that very file.
    assert len(of_type(stopped, "checkpoint")) == K and not of_type(stopped, "finished")
    data = (stopped / "checkpoint.tar").read_bytes()
    record = json.loads((stopped / "checkpoint.json").read_text())
    assert (record["epoch"], record["sha256"], record["size_bytes"]) == (K, hashlib.sha256(data).hexdigest(), len(data))
    with tarfile.open(stopped / "checkpoint.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("meta.json").read())
    assert names[:2] == ["meta.json", "state.pt"]
    assert (meta["epoch"], meta["step"], meta["format"]) == (K, of_type(stopped, "checkpoint")[-1]["step"], 1)
    assert meta["labels"] == ["aşk", "doğa", "şehir"]


def test_what_the_checkpoint_carries(runs):
    family, _, stopped, _ = runs
    with tarfile.open(stopped / "checkpoint.tar") as tar:
        names = set(tar.getnames())
        state = torch.load(tar.extractfile("state.pt"), weights_only=True)
    derived = {"encoder": {"derived/tokenizer/tokenizer.json"}, "scratch": {"derived/tokenizer.model"},
               "decoder": {"derived/tokenizer/tokenizer.json", "derived/base/model.safetensors"}}[family]
    assert derived <= names
    assert {"weights", "optimizer", "scheduler", "scaler", "rng", "loop", "meter"} == set(state)
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    loop = state["loop"]
    assert (loop["epoch"], len(loop["history"])) == (K, K)
    # The best epoch's weights travel only when they are not the current ones.
    assert (loop["best_weights"] is None) == (loop["best_epoch"] == K)
    if family == "decoder":  # LoRA and the head only: the base is frozen
        assert state["weights"] and all("lora_" in n or "score" in n for n in state["weights"])
    assert state["scheduler"]["last_epoch"] == loop["step"]


def test_a_resumed_run_numbers_epochs_and_steps_as_the_stopped_run_did(runs):
    _, whole, stopped, resumed = runs
    started, first = read_events(resumed)[0], read_events(whole)[0]
    assert started["type"] == "started" and started["resumed_from_epoch"] == K and first["resumed_from_epoch"] == 0
    assert started["total_steps"] == first["total_steps"]
    steps_per_epoch = first["total_steps"] // EPOCHS
    assert [m["epoch"] for m in of_type(resumed, "metrics")] == list(range(K + 1, EPOCHS + 1))
    progress = of_type(resumed, "progress")
    assert progress[0]["epoch"] == K + 1 and progress[0]["step"] > K * steps_per_epoch
    assert progress[-1]["step"] == first["total_steps"]
    assert [c["epoch"] for c in of_type(resumed, "checkpoint")] == list(range(K + 1, EPOCHS + 1))
    # Together, the two attempts report every epoch once, with the figures of the uninterrupted run.
    def rows(*run_dirs: Path) -> list[dict]:
        return [{k: v for k, v in m.items() if k not in {"seq", "time_unix_ms"}}
                for run_dir in run_dirs for m in of_type(run_dir, "metrics")]

    assert rows(stopped, resumed) == rows(whole)


def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(runs):
    family, whole, _, resumed = runs

    def without_timing(run_dir: Path) -> dict:
        metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
        return {k: v for k, v in metrics.items() if k not in {"throughput", "summary"}}, {
            k: v for k, v in metrics["summary"].items() if k != "throughput"}

    assert without_timing(resumed) == without_timing(whole)
    a, b = load_file(whole / "model" / WEIGHTS[family]), load_file(resumed / "model" / WEIGHTS[family])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The last epoch's training state too (the exported weights are the best epoch's, maybe an early one).
    with tarfile.open(whole / "checkpoint.tar") as x, tarfile.open(resumed / "checkpoint.tar") as y:
        a, b = (torch.load(t.extractfile("state.pt"), weights_only=True) for t in (x, y))
    for part in ("weights", "optimizer", "scheduler", "rng", "loop"):
        assert same(a[part], b[part]), part
    assert (resumed / "model" / "tokenizer_config.json").exists()
    if family == "decoder":  # the config-built base ships with the adapter, the same as before
        assert load_file(whole / "model" / "base" / "model.safetensors").keys() == load_file(
            resumed / "model" / "base" / "model.safetensors").keys()
    throughput = read_events(resumed)[-1]["final_metrics"]["throughput"]
    assert throughput["samples"] == read_events(whole)[-1]["final_metrics"]["throughput"]["samples"]


@pytest.mark.parametrize("runs", ["encoder"], indirect=True)
def test_an_incompatible_checkpoint_fails_the_run_without_a_retry(runs, tmp_path):
    _, _, stopped, _ = runs
    checkpoint = stopped / "checkpoint.tar"
    model, hp = RUNS["encoder"]
    two_labels = jsonl([e for e in EXAMPLES if e["label"] != "şehir"])
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar at all" * 100)
    cases = {
        "other-family": (checkpoint, hp | {k: RUNS["scratch"][1][k] for k in ("layers", "heads", "d_model", "ff_dim")},
                         RUNS["scratch"][0], {}, "the encoder family and this run is scratch"),
        "other-labels": (checkpoint, hp, model, {"dataset": two_labels}, "labels"),
        "other-epochs": (checkpoint, {**hp, "epochs": EPOCHS + 1}, model, {}, "optimizer steps"),
        "other-model": (checkpoint, hp, {**model, "tokenizer": {"vocab_size": 500}}, {}, "another model"),
        "not-a-checkpoint": (garbage, hp, model, {}, "cannot resume"),
    }
    for name, (source, run_hp, run_model, extra, needle) in cases.items():
        run_dir = resume_from(tmp_path, name, source, run_hp, run_model, **extra)
        assert execute(run_dir) == EXIT_FAILED, name
        finished = read_events(run_dir)[-1]
        assert (finished["error_code"], finished["retryable"]) == ("invalid_checkpoint", False), (name, finished)
        assert needle in finished["error_message"], (name, finished["error_message"])
    tfidf = resume_from(tmp_path, "tfidf", checkpoint, {}, {"family": "tfidf", "name": "", "config": None,
                                                             "tokenizer": None})
    assert execute(tfidf) == EXIT_FAILED and read_events(tfidf)[-1]["error_code"] == "invalid_checkpoint"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("family", "precision"), [("scratch", "fp16"), ("encoder", "bf16"), ("decoder", "bf16")])
def test_a_run_resumed_on_cuda_goes_on_as_an_uninterrupted_one(tmp_path, monkeypatch, family, precision):
    """On CUDA, with autocast, the fp16 gradient scaler and the CUDA generator in the checkpoint."""
    monkeypatch.delenv("MAKAM_WORKER_DEVICE")
    model, hp = RUNS[family]
    whole, stopped, resumed = whole_stopped_resumed(tmp_path, model, {**hp, "precision": precision})
    started = read_events(resumed)[0]
    assert started["device"].startswith("cuda:") and started["resumed_from_epoch"] == K
    with tarfile.open(stopped / "checkpoint.tar") as tar:
        state = torch.load(tar.extractfile("state.pt"), weights_only=True)
    assert state["rng"]["cuda"] is not None and (state["scaler"] is not None) == (precision == "fp16")
    history = lambda d: json.loads((d / "model" / "metrics.json").read_text())["history"]  # noqa: E731
    a, b = history(whole), history(resumed)
    assert [(r["epoch"], r["step"]) for r in a] == [(r["epoch"], r["step"]) for r in b]
    loss_gap = max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in ("train_loss", "validation_loss"))
    x, y = load_file(whole / "model" / WEIGHTS[family]), load_file(resumed / "model" / WEIGHTS[family])
    weight_gap = max(float((x[k].float() - y[k].float()).abs().max()) for k in x)
    print(f"{family} {precision}: largest loss gap {loss_gap:.3g}, largest exported weight gap {weight_gap:.3g}")
    # Bit for bit on an H200 (where two uninterrupted runs are bitwise equal too); a GPU whose kernels
    # are not reproducible run to run (atomic adds) would show gaps here without any resume at fault.
    assert loss_gap == 0 and weight_gap == 0


def test_checkpoints_every_n_epochs_and_after_the_last_resume_as_every_epoch_ones(tmp_path):
    """checkpoint_every_epochs 2 over 5 epochs: checkpoints after epochs 2, 4 and 5 only; a run stopped
    after its first and resumed from it ends exactly as the uninterrupted run."""
    model, hp = RUNS["encoder"]
    hp = {**hp, "epochs": 5, "checkpoint_every_epochs": 2}
    whole = write_run_dir(tmp_path, "whole", hp, model=model)
    assert execute(whole) == EXIT_OK, read_events(whole)[-1]
    assert [c["epoch"] for c in of_type(whole, "checkpoint")] == [2, 4, 5]
    assert len(of_type(whole, "metrics")) == 5
    assert any(e["message"].startswith("checkpoints: 3 saved, ") for e in of_type(whole, "log"))
    stopped = write_run_dir(tmp_path, "stopped", hp, model=model)
    assert execute(stopped, should_stop=stop_after_checkpoints(stopped, 1)) == EXIT_CANCELLED
    assert [c["epoch"] for c in of_type(stopped, "checkpoint")] == [2]
    resumed = resume_from(tmp_path, "resumed", stopped / "checkpoint.tar", hp, model)
    assert execute(resumed) == EXIT_OK, read_events(resumed)[-1]
    assert read_events(resumed)[0]["resumed_from_epoch"] == 2
    assert [c["epoch"] for c in of_type(resumed, "checkpoint")] == [4, 5]
    a, b = load_file(whole / "model" / WEIGHTS["encoder"]), load_file(resumed / "model" / WEIGHTS["encoder"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_by_minutes_come_at_epoch_ends_once_the_time_has_passed(tmp_path):
    model, hp = RUNS["encoder"]
    # A minute count far beyond epochs: no checkpoint but the last. One shorter than any epoch: each.
    slow = write_run_dir(tmp_path, "slow", {**hp, "epochs": 3, "checkpoint_every_epochs": 1000,
                                            "checkpoint_every_minutes": 600}, model=model)
    assert execute(slow) == EXIT_OK
    assert [c["epoch"] for c in of_type(slow, "checkpoint")] == [3]
    fast = write_run_dir(tmp_path, "fast", {**hp, "epochs": 3, "checkpoint_every_epochs": 1000,
                                            "checkpoint_every_minutes": 1e-6}, model=model)
    assert execute(fast) == EXIT_OK
    assert [c["epoch"] for c in of_type(fast, "checkpoint")] == [1, 2, 3]


def test_a_checkpoint_holds_the_state_when_it_was_taken_while_training_goes_on():
    """The background write gets a copy: the steps after it change the live weights and the
    optimizer's moments in place, never what is being written."""
    from makam_worker.training.throughput import Meter
    from makam_worker.training.train_state import LoopState, capture

    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    state = capture(model=model, optimizer=optimizer, scheduler=scheduler, scaler=None, loop=LoopState(epoch=1, step=1),
                    meter=Meter(torch.device("cpu")), device=torch.device("cpu"))
    taken_weight = model.weight.detach().clone()
    taken_moment = optimizer.state[model.weight]["exp_avg"].clone()
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()  # in place, as the next step of the loop
    assert not torch.equal(model.weight, taken_weight)
    assert torch.equal(state["weights"]["weight"], taken_weight)
    assert torch.equal(state["optimizer"]["state"][0]["exp_avg"], taken_moment)
