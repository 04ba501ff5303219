"""Worker start-up benchmark: StartRun → the run's first training step, cold spawn vs warm fork.

Starts two real workers (`python -m makam_worker`, plaintext on loopback, each its own state dir):
one with MAKAM_WORKER_WARM=0, which spawns every run as `python -m makam_worker.training.child`
(torch and transformers imported anew), and one with the warm training process (warm.py), whose
runs are forked from a Python that has imported them already. Once the warm one says it is ready,
the same runs go to both, alternately, one at a time:

- `tfidf` on 60 rows (3 labels);
- `encoder`: a tiny BERT built from a config (2 layers, hidden 32), its WordPiece tokenizer trained
  on the split (vocab 300), 1 epoch.

Measured: from just before the StartRun call to the `time_unix_ms` of the run's first `progress`
event (the neural loop emits one on its first step; tfidf emits its one progress event when its fit
is done), on the same clock. A worker trains a tokenizer on its first encoder run and reuses it after
(tokenizer_cache.py), so the first run is printed apart from the median of the others.

    workers-python/.venv/bin/python bench/worker_startup.py            # 5 runs of each
    workers-python/.venv/bin/python bench/worker_startup.py --runs 9 --json startup.json
    workers-python/.venv/bin/python bench/worker_startup.py --threads 1    # OMP_NUM_THREADS=1 for both

A benchmark, not a test: nothing is asserted beyond every run succeeding. Targets (issue 12, a quiet
2-core machine): tfidf ≤ 300 ms, tiny encoder ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / "workers-python" / ".venv" / "bin" / "python"
sys.path.insert(0, str(ROOT / "workers-python" / "src"))

import grpc  # noqa: E402

from makam.worker.v1 import worker_pb2 as pb  # noqa: E402
from makam.worker.v1 import worker_pb2_grpc  # noqa: E402

KEYWORDS = {
    "aşk": ["kalbim seni özledi", "sevgilim gözlerin", "aşkın ateşi yakar", "yarim gitti", "gönlüm sende kaldı"],
    "doğa": ["dağların ardında", "denizin dalgaları", "orman yemyeşil", "yağmur toprağa düşer", "nehir akıyor"],
    "şehir": ["İstanbul sokakları", "trafik ve korna sesi", "metro kalabalık", "beton binalar", "otobüs durağında"],
}
FRAMES = ["{} bu akşam", "Yine {} diye şarkı söylerim", "{} her zaman aklımda", "Dün gece {}"]
ROWS = [{"text": f.format(k), "label": label} for label, ks in KEYWORDS.items() for k in ks for f in FRAMES]  # 60
DATASET = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS).encode()
SHA256 = hashlib.sha256(DATASET).hexdigest()
TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 128}
DEADLINE = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(kind: str, run_id: str) -> pb.StartRunRequest:
    req = pb.StartRunRequest(run_id=run_id, train_dataset_sha256=SHA256)
    req.model.family = kind
    if kind == "encoder":
        req.model.config.update(TINY_BERT)
        req.model.tokenizer.update({"vocab_size": 300})
        req.hyperparameters.update({"epochs": 1, "batch_size": 8, "validation_fraction": 0.25})
    return req


class Worker:
    def __init__(self, name: str, tmp: Path, warm: bool, threads: int = 0) -> None:
        self.name, self.port = name, free_port()
        self.log_path = tmp / f"{name}.log"
        env = {**os.environ, "MAKAM_WORKER_WARM": "1" if warm else "0", "HF_HUB_OFFLINE": "1",
               "MAKAM_WORKER_DEVICE": "cpu"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(PYTHON), "-m", "makam_worker", "--listen", f"127.0.0.1:{self.port}", "--state-dir", str(tmp / name)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = worker_pb2_grpc.WorkerServiceStub(self.channel)

    def wait_serving(self) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=DEADLINE)
        chunks = [pb.UploadDatasetRequest(header=pb.DatasetHeader(sha256=SHA256, size_bytes=len(DATASET))),
                  pb.UploadDatasetRequest(chunk=DATASET)]
        self.stub.UploadDataset(iter(chunks), timeout=DEADLINE)

    def wait_warm(self, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if "warm training process" in line and " ready in " in line:
                    return float(line.rsplit(" ready in ", 1)[1].rstrip("s"))
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: the warm training process was not ready in {timeout:.0f}s")

    def run(self, kind: str, run_id: str) -> float:
        """Seconds from StartRun to the first progress event; waits for the run to succeed."""
        began_ms = time.time_ns() / 1e6
        self.stub.StartRun(request(kind, run_id), timeout=DEADLINE)
        self.start_run_ms = time.time_ns() / 1e6 - began_ms  # the call alone: the run is forked or spawned inside it
        first_ms, finished = None, None
        for event in self.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=DEADLINE):
            which = event.WhichOneof("event")
            if which == "progress" and first_ms is None:
                first_ms = event.time_unix_ms
            if which == "finished":
                finished = event.finished
        if finished is None or finished.state != pb.RunState.RUN_STATE_SUCCEEDED or first_ms is None:
            raise RuntimeError(f"{self.name}: run {run_id} did not succeed: {finished}")
        self.stub.DeleteRun(pb.DeleteRunRequest(run_id=run_id), timeout=DEADLINE)
        return (first_ms - began_ms) / 1000

    def stop(self) -> None:
        self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each family on each worker (default 5)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS for both workers' runs (default: torch's own, one per core); on a "
                             "loaded machine 1 keeps the tiny model's steps from waiting on busy cores")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {k: {"cold": [], "warm": []} for k in ("tfidf", "encoder")}
    with tempfile.TemporaryDirectory(prefix="makam-startup-") as tmp_name:
        tmp = Path(tmp_name)
        workers = {"cold": Worker("cold", tmp, warm=False, threads=args.threads),
                   "warm": Worker("warm", tmp, warm=True, threads=args.threads)}
        try:
            for w in workers.values():
                w.wait_serving()
            ready_s = workers["warm"].wait_warm()
            print(f"warm training process ready {ready_s:.1f}s after the worker started serving", flush=True)
            for i in range(args.runs):
                for kind in ("tfidf", "encoder"):
                    for how, w in workers.items():
                        seconds = w.run(kind, f"{kind}-{i}")
                        results[kind][how].append(seconds)
                        print(f"  {kind:8s} {how}: {seconds * 1000:8.0f} ms  (the StartRun call: {w.start_run_ms:.0f} ms)",
                              flush=True)
        finally:
            for w in workers.values():
                w.stop()
    targets = {"tfidf": 0.3, "encoder": 1.5}
    print()
    print("StartRun → first training step (`progress` event), seconds; first run, then median (min-max) of the rest")
    print(f"{'family':10s} {'cold first':>10s} {'cold median':>12s} {'warm first':>10s} {'warm median':>12s} "
          f"{'cold/warm':>9s} {'target':>7s}")
    summary = {}
    for kind, by in results.items():
        row = {}
        for how in ("cold", "warm"):
            rest = by[how][1:] or by[how]
            row[how] = {"first": by[how][0], "median": statistics.median(rest), "min": min(rest), "max": max(rest)}
        ratio = row["cold"]["median"] / row["warm"]["median"]
        met = "met" if row["warm"]["median"] <= targets[kind] else "missed"
        print(f"{kind:10s} {row['cold']['first']:10.3f} {row['cold']['median']:12.3f} {row['warm']['first']:10.3f} "
              f"{row['warm']['median']:12.3f} {ratio:8.1f}x {targets[kind]:6.1f}s {met}")
        summary[kind] = {**row, "ratio": ratio, "target_s": targets[kind], "runs": by}
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"warm_ready_s": ready_s, "families": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
