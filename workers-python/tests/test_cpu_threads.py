"""A run's CPU threads come from the worker's CPU budget (settings.cpu_budget: MAKAM_WORKER_CPUS, else
OMP_NUM_THREADS, else the cgroup's quota, else the process's CPU affinity) and are set inside the run,
so runs forked from the warm process, whose torch was loaded before, use the count they were given."""

from __future__ import annotations

import os

import pytest

from makam_worker.process import RunProcess
from makam_worker.settings import cpu_budget
from makam_worker.warm import WarmProcess
from test_warm_process import LONG, finished_of, forked, make_run, wait_event
from test_warm_process import warm  # noqa: F401  (a fixture)

AFFINITY = len(os.sched_getaffinity(0))


def test_the_setting_comes_first_and_a_bad_value_names_it(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert cpu_budget({"MAKAM_WORKER_CPUS": "3"}, tmp_path) == (3, "MAKAM_WORKER_CPUS")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        cpu_budget({"OMP_NUM_THREADS": "lots"}, tmp_path)
    for bad in ("0", "two", "1.5"):
        with pytest.raises(ValueError, match="MAKAM_WORKER_CPUS"):
            cpu_budget({"MAKAM_WORKER_CPUS": bad}, tmp_path)


def test_then_openmps_own_variable(tmp_path):
    assert cpu_budget({"OMP_NUM_THREADS": "1"}, tmp_path) == (1, "OMP_NUM_THREADS")
    assert cpu_budget({"OMP_NUM_THREADS": "3,1"}, tmp_path) == (3, "OMP_NUM_THREADS")
    assert cpu_budget({"OMP_NUM_THREADS": "1", "MAKAM_WORKER_CPUS": "2"}, tmp_path) == (2, "MAKAM_WORKER_CPUS")


def test_then_the_cgroup_quota_rounded_up_then_the_affinity(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("50000 100000\n")  # docker --cpus 0.5
    assert cpu_budget({}, v2) == (1, "the cgroup's CPU quota")
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cpu_budget({}, v2) == (AFFINITY, "the CPUs this process may run on")
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_budget({}, v1.parent) == (1, "the cgroup's CPU quota")
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_budget({}, v1.parent) == (AFFINITY, "the CPUs this process may run on")
    # A quota above the CPUs the process may use gives no more threads than those.
    (v2 / "cpu.max").write_text(f"{(AFFINITY + 4) * 100000} 100000\n")
    assert cpu_budget({}, v2)[0] == AFFINITY


def threads_line(proc: RunProcess) -> str:
    """The run's own report of its thread count (train.log), read once it is training; then cancelled."""
    wait_event(proc.paths, "started")
    proc.terminate("cancel", grace_s=30)
    assert finished_of(proc)["state"] == "CANCELLED"
    lines = [line for line in proc.paths.train_log.read_text().splitlines() if "CPU threads:" in line]
    assert len(lines) == 1, proc.paths.train_log.read_text()[-3000:]
    return lines[0]


def test_runs_forked_from_one_warm_process_each_use_the_count_they_were_given(warm, tmp_path, monkeypatch):
    # The warm process loaded torch under conftest's OMP_NUM_THREADS=1; each run sizes its own pool.
    for n in (1, 2):
        monkeypatch.setenv("MAKAM_WORKER_CPUS", str(n))
        line = threads_line(forked(warm, make_run(tmp_path, f"forked-{n}", LONG)))
        assert line.endswith(f"CPU threads: {n}, from MAKAM_WORKER_CPUS; torch uses {n}"), line


def test_a_cold_run_uses_the_count_too(tmp_path, monkeypatch):
    # conftest sets OMP_NUM_THREADS=1 for every test; the worker's own setting comes first.
    monkeypatch.setenv("MAKAM_WORKER_CPUS", "2")
    proc = RunProcess.spawn(make_run(tmp_path, "cold", LONG), WarmProcess())  # never started: spawned cold
    assert proc.popen is not None
    assert threads_line(proc).endswith("CPU threads: 2, from MAKAM_WORKER_CPUS; torch uses 2")


def test_the_ranks_of_a_run_on_several_devices_share_its_budget(monkeypatch):
    import logging

    import torch

    from makam_worker.training import cpu_threads

    from threadpoolctl import ThreadpoolController

    def applied() -> int:
        threads = cpu_threads.apply(logging.getLogger("test"), neural=True)
        # torch's own count, as its other threads and MKL take it, not only this thread's OpenMP count
        # (which threadpoolctl sets without torch): those stay at the count torch loaded with otherwise.
        assert (torch.get_num_threads(), cpu_threads.torch_threads(torch)) == (threads, threads)
        return threads

    before, pools = torch.get_num_threads(), ThreadpoolController().info()
    monkeypatch.setenv("MAKAM_WORKER_CPUS", "4")
    for name in cpu_threads.THREAD_ENV:
        monkeypatch.setenv(name, "1")  # apply() rewrites them; monkeypatch puts them back
    try:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # set by torchrun for each rank
        assert applied() == 2
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
        assert applied() == 1
        monkeypatch.delenv("LOCAL_WORLD_SIZE")
        assert applied() == 4
        # Without a setting, the cgroup's quota or the CPUs this process may run on.
        monkeypatch.delenv("MAKAM_WORKER_CPUS")
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert applied() == cpu_budget()[0]
    finally:  # this test's process goes on running other tests
        torch.set_num_threads(before)
        for pool in pools:
            ThreadpoolController().select(internal_api=pool["internal_api"]).limit(limits=pool["num_threads"])
