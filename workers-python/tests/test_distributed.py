"""One run on 2 devices (2 CPU processes on gloo, under torchrun as the worker starts them;
training/distributed.py): the loss curve of one process with the same global batch, a rank's SIGKILL
as a retryable worker fault that a resumed run carries to the end, and a cancel that stops every rank."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LEARNS, SCRATCH, TINY_LLAMA, model_spec, read_events, write_run_dir
from makam_worker.layout import RunPaths
from makam_worker.process import RunProcess
from makam_worker.training import trainer
from makam_worker.training.child import EXIT_OK, execute
from makam_worker.warm import WarmProcess
from test_checkpoint import of_type, resume_from

DEVICES = 2
# 54 training rows: 7 steps an epoch of a global batch of 8 (4 per device), the last of 6 (3 + 3).
GLOBAL = {**LEARNS, "epochs": 2, "batch_size": 8}
PER_DEVICE = {**GLOBAL, "batch_size": GLOBAL["batch_size"] // DEVICES}
# Dropout 0: the ranks draw other masks than one process would.
MODEL = {**model_spec(), "config": {**model_spec()["config"], "hidden_dropout_prob": 0.0,
                                     "attention_probs_dropout_prob": 0.0}}
# fp32 sums of the same terms in another order (per rank, then across ranks) over 14 steps.
RTOL = 1e-4


def with_devices(run_dir: Path, devices: int = DEVICES) -> Path:
    spec = json.loads((run_dir / "spec.json").read_text())
    (run_dir / "spec.json").write_text(json.dumps({**spec, "devices": devices}))
    return run_dir


def wait_for(predicate, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ranks(run_dir: Path) -> dict[int, int]:
    """The run's rank processes, rank -> pid, from /proc (torchrun's own command line is not a rank's)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if str(run_dir).encode() in cmdline and b"torch.distributed.run" not in cmdline:
            rank = next((e[5:] for e in environ if e.startswith(b"RANK=")), None)
            if rank is not None:
                found[int(rank)] = int(proc.name)
    return found


def gone(pid: int) -> bool:
    try:
        state = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"  # exited, not yet reaped by its parent


def so_far(run_dir: Path, kind: str) -> list[dict]:
    """The events of `kind` written so far (none before the first event creates the file)."""
    return of_type(run_dir, kind) if (run_dir / "events.jsonl").exists() else []


def spawn(run_dir: Path) -> RunProcess:
    return RunProcess.spawn(RunPaths(run_dir), WarmProcess(), devices=DEVICES)  # never-started warm: spawned


def step_losses(run_dir: Path) -> list[float]:
    return [e["train_loss"] for e in of_type(run_dir, "progress")]


def train_both_ways(tmp_path, monkeypatch, hp: dict, model: dict) -> tuple[Path, Path]:
    """The same run in one process (global batch) and on DEVICES ranks (its share per device)."""
    one = write_run_dir(tmp_path, "one", hp, model=model)
    # A progress event after every step, in this process and (distributed_rank.py) in each rank.
    init = trainer.ProgressReporter.__init__
    monkeypatch.setattr(trainer.ProgressReporter, "__init__", lambda self, e, t, interval_s=0.0: init(self, e, t, 0.0))
    assert execute(one) == EXIT_OK, read_events(one)[-1]

    two = with_devices(write_run_dir(tmp_path, "two", {**hp, "batch_size": hp["batch_size"] // DEVICES}, model=model))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={DEVICES}",
               str(Path(__file__).with_name("distributed_rank.py")), str(two)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return one, two


def test_the_same_global_batch_gives_the_loss_curve_of_one_process(tmp_path, monkeypatch):
    one, two = train_both_ways(tmp_path, monkeypatch, GLOBAL, MODEL)

    started = read_events(two)[0]
    assert started["total_steps"] == read_events(one)[0]["total_steps"] == 14
    assert step_losses(two) == pytest.approx(step_losses(one), rel=RTOL)
    assert len(step_losses(two)) == 14
    epochs = lambda d: [(m["epoch"], m["step"], m["accuracy"], m["macro_f1"]) for m in of_type(d, "metrics")]
    assert epochs(two) == epochs(one)
    assert [m["validation_loss"] for m in of_type(two, "metrics")] == pytest.approx(
        [m["validation_loss"] for m in of_type(one, "metrics")], rel=RTOL)
    assert read_events(two)[-1]["state"] == "SUCCEEDED"
    throughput = read_events(two)[-1]["final_metrics"]["throughput"]
    assert throughput["devices"] == DEVICES  # and it counts both ranks' samples, as one process counts its own
    assert throughput["samples"] == read_events(one)[-1]["final_metrics"]["throughput"]["samples"] == 54 * 2
    # Only rank 0 reports: rank 1 wrote into its own corner of the run dir.
    assert (two / "ranks" / "1" / "events.jsonl").exists() and (two / "model.tar.gz").exists()


# Dropout 0 again (the ranks draw other masks than one process would); the decoder trains its LoRA
# adapters and head under DDP, the scratch transformer all of itself.
OTHER_FAMILIES = {
    "scratch": (dict(SCRATCH),
                {"layers": 2, "heads": 2, "d_model": 32, "ff_dim": 64, "vocab_size": 200, "dropout": 0.0}),
    "decoder": ({"family": "decoder", "name": "", "config": dict(TINY_LLAMA), "tokenizer": {"vocab_size": 400}},
                {"lora_dropout": 0.0, "lora_target_modules": ["q_proj", "v_proj"]}),
}


@pytest.mark.parametrize("family", list(OTHER_FAMILIES))
def test_scratch_and_decoder_runs_on_two_devices_follow_the_loss_curve_of_one_process(tmp_path, monkeypatch, family):
    model, extra = OTHER_FAMILIES[family]
    one, two = train_both_ways(tmp_path, monkeypatch, {**GLOBAL, "epochs": 1, **extra}, model)
    assert read_events(two)[-1]["state"] == "SUCCEEDED", read_events(two)[-1]
    assert len(step_losses(two)) == len(step_losses(one)) == 7
    assert step_losses(two) == pytest.approx(step_losses(one), rel=RTOL)
    assert read_events(two)[-1]["final_metrics"]["throughput"]["devices"] == DEVICES


def test_a_rank_killed_mid_run_is_a_worker_fault_and_the_resumed_run_trains_to_the_end(tmp_path):
    hp = {**PER_DEVICE, "epochs": 3}
    killed = with_devices(write_run_dir(tmp_path, "killed", hp))
    proc = spawn(killed)
    wait_for(lambda: len(so_far(killed, "checkpoint")) >= 1, "the first checkpoint")
    pids = ranks(killed)
    assert sorted(pids) == [0, 1]
    os.kill(pids[1], signal.SIGKILL)
    assert proc.done.wait(120)

    finished = read_events(killed)[-1]
    assert (finished["type"], finished["state"], finished["error_code"], finished["retryable"]) == \
        ("finished", "FAILED", "worker_crashed", True), finished
    assert all(gone(pid) for pid in pids.values())
    epoch = json.loads((killed / "checkpoint.json").read_text())["epoch"]
    assert 1 <= epoch < hp["epochs"]

    resumed = with_devices(resume_from(tmp_path, "resumed", killed / "checkpoint.tar", hp, read_spec(killed)["model"]))
    proc = spawn(resumed)
    assert proc.done.wait(180)
    events = read_events(resumed)
    assert events[-1]["state"] == "SUCCEEDED", events[-1]
    assert events[0]["resumed_from_epoch"] == epoch
    assert [m["epoch"] for m in of_type(resumed, "metrics")] == list(range(epoch + 1, hp["epochs"] + 1))


def test_a_cancel_stops_every_rank(tmp_path):
    run = with_devices(write_run_dir(tmp_path, "cancelled", {**PER_DEVICE, "epochs": 1000}))
    proc = spawn(run)
    wait_for(lambda: len(so_far(run, "progress")) >= 1, "training under way")
    pids = ranks(run)
    assert sorted(pids) == [0, 1]
    proc.terminate("cancel", grace_s=60)  # the SIGTERM alone: a SIGKILL after 60 s would fail the log check

    assert read_events(run)[-1]["state"] == "CANCELLED"
    wait_for(lambda: all(gone(pid) for pid in pids.values()), "every rank to exit", timeout_s=30)
    log = (run / "train.log").read_text()
    assert log.count("cancelled; exiting for the server to record it") == DEVICES  # each rank stopped itself


def test_a_stop_that_reaches_one_rank_stops_them_all_at_one_check(tmp_path):
    # torchrun's SIGTERM reaches its ranks at slightly different moments: here only rank 1 gets one. A rank
    # that stopped by itself would leave rank 0 to fail in the next step's collective (distributed.agreed).
    run = with_devices(write_run_dir(tmp_path, "one-signalled", {**PER_DEVICE, "epochs": 1000}))
    proc = spawn(run)
    wait_for(lambda: len(so_far(run, "progress")) >= 1, "training under way")
    pids = ranks(run)
    os.kill(pids[1], signal.SIGTERM)
    wait_for(lambda: all(gone(pid) for pid in pids.values()), "every rank to exit", timeout_s=60)
    assert proc.done.wait(60)
    log = (run / "train.log").read_text()
    assert log.count("cancelled; exiting for the server to record it") == DEVICES, log[-3000:]
    assert "rank stopped with the run around it" not in log


def read_spec(run_dir: Path) -> dict:
    return json.loads((run_dir / "spec.json").read_text())
