"""Tuning benchmark: an Optuna tune job against the untuned defaults, through the whole system (CPU).

Runs the guide's search space (heads, layers, feed-forward width, dropout, learning rate, warmup and
weight decay, with TPE) on the `scratch` family over TTC-3600's fixed splits, and beside it, in the
same run, a plain `finetune` job with the same fixed settings and the searched hyperparameters left
at the scratch family's defaults. Both go through the real system: datasets uploaded over REST, jobs
submitted to the API, queued in Redis, taken by the dispatcher (whose coordinator asks the Optuna
study process for trials and prunes them per epoch) and trained on the Python workers over gRPC.

    workers-python/.venv/bin/python bench/tune.py                            # starts its own stack
    workers-python/.venv/bin/python bench/tune.py --trials 12 --epochs 3 --json tune.json
    workers-python/.venv/bin/python bench/tune.py --api http://127.0.0.1:8080 --key mk_...

By default it starts its own stack in a temporary directory: redis-server on a free port, two Python
workers, the API and one cpu-class dispatcher (Node.js >= 22: --node, MAKAM_NODE, .tools/node, or
`node` on PATH), and stops all of it at the end, on error too. With --api and --key it uses a running
stack instead (its cpu class must have workers). The objective is validation macro F1 (maximize);
the test split is only reported, never used to choose. It is a benchmark, not a test: nothing is
asserted beyond every job ending.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MAKAM_SHARED_DATA", REPO.parent / "shared" / "data"))
VENV_PYTHON = REPO / "workers-python" / ".venv" / "bin" / "python"

# Fixed for the tune job's trials and the baseline alike: sized so that one trial of 3 epochs takes
# well under a minute on 2 CPU cores (a 64-wide model over 128 head+tail tokens of a 4k vocabulary).
# The tokenizer stays the default BPE: a unigram one takes ~18 s more to learn, in every trial.
FIXED = {
    "batch_size": 32, "max_length": 128, "truncation": "head+tail", "d_model": 64, "vocab_size": 4000,
    "lr_scheduler": "cosine", "seed": 42,
}

# The guide's search space, ranges sized for CPU. Every heads choice divides d_model (64).
SPACE = {
    "layers": {"type": "int", "low": 1, "high": 3},
    "heads": {"type": "categorical", "choices": [2, 4, 8]},
    "ff_dim": {"type": "categorical", "choices": [128, 256, 512]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
    "weight_decay": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
}

# What the baseline gets for the searched hyperparameters: the scratch family's defaults
# (docs/hyperparameters.md), listed here only to print them; the baseline request leaves them out.
SCRATCH_DEFAULTS = {"layers": 4, "heads": 4, "ff_dim": 1024, "dropout": 0.1, "learning_rate": 5e-4,
                    "warmup_ratio": 0.1, "weight_decay": 0.01}

METRIC = "macro_f1"
TERMINAL = {"succeeded", "failed", "cancelled"}


# --- the stack ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_node(explicit: str | None) -> str:
    candidates = [explicit, os.environ.get("MAKAM_NODE"), str(REPO / ".tools/node/node_modules/.bin/node"), shutil.which("node")]
    for c in candidates:
        if not c or not Path(c).exists():
            continue
        major = subprocess.run([c, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True).stdout.strip()
        if major.isdigit() and int(major) >= 22:
            return c
    raise SystemExit("no Node.js >= 22 found: pass --node, set MAKAM_NODE, or run `source scripts/env.sh` first")


class Stack:
    """Redis, the workers, the API and a dispatcher, each in its own process group with a log file."""

    def __init__(self, node: str, workers: int, threads: int) -> None:
        self.node = node
        self.workers = workers
        self.threads = threads
        self.dir = Path(tempfile.mkdtemp(prefix="makam-bench-tune-"))
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.api_url = ""
        self.key = ""

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def _wait(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) while waiting for {what}")
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def start(self) -> None:
        redis_port = free_port()
        (self.dir / "redis").mkdir()
        self._start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(self.dir / "redis"),
                              "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"], {})
        redis_url = f"redis://127.0.0.1:{redis_port}"
        self._wait("redis", lambda: socket.create_connection(("127.0.0.1", redis_port), 1).close() is None, 10)

        addresses = [f"127.0.0.1:{free_port()}" for _ in range(self.workers)]
        # One training child per worker at a time; each gets its share of the cores (PyTorch would
        # otherwise start as many threads as there are cores in every child).
        threads = {k: str(self.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        for i, address in enumerate(addresses):
            self._start(f"worker{i + 1}", [str(VENV_PYTHON), "-m", "makam_worker", "--listen", address,
                                           "--state-dir", str(self.dir / f"worker{i + 1}")],
                        {"PYTHONUNBUFFERED": "1", "MAKAM_WORKER_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", **threads})
        api_port = free_port()
        common = {"REDIS_URL": redis_url, "MAKAM_REDIS_PREFIX": "bench", "MAKAM_QUEUE_PREFIX": "bench-q",
                  "MAKAM_STORE_DIR": str(self.dir / "store"), "MAKAM_RESOURCE_CLASSES": "cpu", "MAKAM_LOG_LEVEL": "info"}
        self._start("api", [self.node, "services/api/src/server.ts"], {**common, "MAKAM_API_PORT": str(api_port)})
        self._start("dispatcher", [self.node, "services/dispatcher/src/main.ts"],
                    {**common, "MAKAM_CLASS": "cpu", "MAKAM_WORKERS": ",".join(addresses), "MAKAM_TUNE_POLL_MS": "500"})
        self.api_url = f"http://127.0.0.1:{api_port}"
        self._wait("the API", lambda: urllib.request.urlopen(f"{self.api_url}/readyz", timeout=2).status == 200, 60)
        for address in addresses:
            host, port = address.split(":")
            self._wait(f"the worker at {address}", lambda: socket.create_connection((host, int(port)), 1).close() is None, 120)
        out = subprocess.run([self.node, "services/api/src/admin.ts", "keys", "create", "--tenant", "bench", "--name", "bench/tune.py"],
                             cwd=REPO, env={**os.environ, **common}, capture_output=True, text=True, check=True)
        self.key = json.loads(out.stdout.strip().splitlines()[-1])["key"]

    def tail(self, lines: int = 40) -> str:
        out = []
        for name, _ in self.procs:
            path = self.dir / f"{name}.log"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name} ({path})\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self, keep_dir: bool) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for _, proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Whatever of its group is left (a training child, the study process) goes too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- the API --------------------------------------------------------------------------------------

class Api:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
        req = urllib.request.Request(f"{self.url}{path}", data=body, method=method,
                                     headers={"authorization": f"Bearer {self.key}", **({"content-type": content_type} if body is not None else {})})
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path}: {err.code} {err.read().decode(errors='replace')}") from None

    def upload(self, name: str, rows: list[dict[str, str]]) -> str:
        body = "".join(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n" for r in rows).encode()
        return self.call("POST", f"/v1/datasets?name={name}", body, "application/jsonl")["id"]

    def submit(self, request: dict) -> str:
        return self.call("POST", "/v1/jobs", json.dumps(request).encode())["id"]

    def job(self, job_id: str) -> dict:
        return self.call("GET", f"/v1/jobs/{job_id}")

    def trials(self, job_id: str) -> list[dict]:
        return self.call("GET", f"/v1/jobs/{job_id}/trials")["data"]


# --- the benchmark --------------------------------------------------------------------------------

def ttc3600() -> dict[str, list[dict[str, str]]]:
    with gzip.open(DATA / "ttc3600" / "ttc3600.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return {name: [r for r in rows if r["split"] == name] for name in ("train", "val", "test")}


def seconds(job: dict) -> float | None:
    if not job.get("started_at") or not job.get("finished_at"):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(job["finished_at"]) - parse(job["started_at"])).total_seconds()


def summarize(job: dict) -> dict:
    r = job.get("result") or {}
    test = r.get("test") or {}
    return {
        "job_id": job["id"], "status": job["status"], "error": job.get("error"),
        "validation": {k: (r.get("validation") or {}).get(k) for k in ("accuracy", "macro_f1", "weighted_f1", "loss", "epoch")},
        "test": {k: test.get(k) for k in ("accuracy", "macro_f1", "weighted_f1", "examples")},
        "best_epoch": r.get("best_epoch"), "epochs_trained": r.get("epochs_trained"),
        "seconds": seconds(job), "submitted_to_finished_seconds": None,
    }


def run(api: Api, args: argparse.Namespace) -> dict:
    splits = ttc3600()
    print(f"... uploading TTC-3600: train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])}", file=sys.stderr, flush=True)
    ids = {name: api.upload(f"ttc3600-{name}", rows) for name, rows in splits.items()}
    fixed = {**FIXED, "epochs": args.epochs}
    common = {"model": {"family": "scratch"}, "dataset": ids["train"], "validation_dataset": ids["val"], "test_dataset": ids["test"],
              "resource_class": "cpu"}
    search = {"space": SPACE, "objective": {"metric": METRIC, "direction": "maximize"}, "trials": args.trials,
              "parallelism": args.parallelism, "sampler": "tpe", "pruner": args.pruner, "seed": args.seed}
    # The baseline first: on a stack with two workers it trains beside the first trials.
    began = time.monotonic()
    baseline_id = api.submit({"kind": "finetune", **common, "hyperparameters": fixed})
    tune_id = api.submit({"kind": "tune", **common, "hyperparameters": fixed, "search": search})
    print(f"... baseline {baseline_id}, tune {tune_id}", file=sys.stderr, flush=True)
    done: dict[str, float] = {}
    shown = ""
    while len(done) < 2:
        if time.monotonic() - began > args.timeout:
            raise RuntimeError(f"jobs not finished after {args.timeout} s")
        for job_id in (baseline_id, tune_id):
            if job_id not in done and api.job(job_id)["status"] in TERMINAL:
                done[job_id] = time.monotonic() - began
        study = api.job(tune_id).get("study") or {}
        state = (f"baseline {api.job(baseline_id)['status']}  tune: "
                f"{study.get('complete', 0)} complete, {study.get('pruned', 0)} pruned, {study.get('failed', 0)} failed, "
                f"{study.get('running', 0)} running of {study.get('trials', args.trials)}"
                + (f"; best {study['best']['value']:.4f} (#{study['best']['number']})" if study.get("best") else ""))
        if state != shown:
            print(f"{time.monotonic() - began:6.0f}s  {state}", file=sys.stderr, flush=True)
            shown = state
        time.sleep(2)
    wall = time.monotonic() - began

    baseline = api.job(baseline_id)
    tune = api.job(tune_id)
    trials = api.trials(tune_id)
    b = summarize(baseline)
    b["submitted_to_finished_seconds"] = done[baseline_id]
    t = summarize(tune)
    t["submitted_to_finished_seconds"] = done[tune_id]
    t["study"] = tune.get("study")
    t["best_trial"] = tune.get("best_trial")
    t["importances"] = tune.get("importances")
    t["trials"] = [{"number": x["number"], "job_id": x["job_id"], "state": x["state"], "status": x["status"], "value": x["value"],
                    "epochs": len(x.get("intermediate_values") or []), "intermediate_values": x.get("intermediate_values"),
                    "params": x["params"],
                    "seconds": seconds({"started_at": x.get("started_at"), "finished_at": x.get("finished_at")})} for x in trials]
    return {"date": time.strftime("%Y-%m-%d"), "dataset": "ttc3600", "family": "scratch", "objective": METRIC,
            "fixed": fixed, "space": SPACE, "search": search, "baseline_searched_defaults": SCRATCH_DEFAULTS,
            "baseline": b, "tune": t, "wall_seconds": wall}


def fmt(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def report(out: dict) -> None:
    b, t = out["baseline"], out["tune"]
    s = t.get("study") or {}
    print()
    print(f"TTC-3600, scratch, {out['fixed']['epochs']} epochs; objective validation {METRIC} (maximize); "
          f"fixed {json.dumps({k: v for k, v in out['fixed'].items() if k != 'epochs'})}")
    print()
    header = f"{'run':<34} {'trials (c/p/f)':>14} {'best val ' + METRIC:>17} {'test acc':>8} {'test macro F1':>13} {'wall s':>7}"
    print(header)
    print("-" * len(header))
    for name, r, trials in (("baseline (searched at defaults)", b, "-"),
                            (f"tune (TPE, {out['search']['trials']} trials, par {out['search']['parallelism']})", t,
                             f"{s.get('complete', 0)}/{s.get('pruned', 0)}/{s.get('failed', 0)}")):
        if r["status"] != "succeeded":
            print(f"{name:<34} {trials:>14} {r['status']}: {json.dumps(r['error'])}")
            continue
        print(f"{name:<34} {trials:>14} {fmt(r['validation'][METRIC]):>17} {fmt(r['test']['accuracy']):>8} "
              f"{fmt(r['test']['macro_f1']):>13} {fmt(r['submitted_to_finished_seconds'], 0):>7}")
    print()
    print(f"baseline's searched hyperparameters (scratch defaults): {json.dumps(out['baseline_searched_defaults'])}")
    best = t.get("best_trial")
    if best:
        params = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in best["params"].items()}
        print(f"best trial #{best['number']} ({best['job_id']}): validation {METRIC} {best['value']:.4f}, params {json.dumps(params)}")
    if t.get("importances"):
        print("importances (Optuna fANOVA): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(t["importances"].items(), key=lambda kv: -kv[1])))
    print()
    print(f"{'#':>3} {'state':<8} {'value':>7} {'epochs':>6} {'seconds':>7}  params")
    for x in t.get("trials", []):
        params = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in x["params"].items()}
        print(f"{x['number']:>3} {x['state']:<8} {fmt(x['value']):>7} {x['epochs']:>6} {fmt(x['seconds'], 0):>7}  {json.dumps(params)}")
    print()
    print(f"wall time from submission to both jobs finished: {out['wall_seconds']:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="trial budget of the tune job (10)")
    parser.add_argument("--parallelism", type=int, default=2, help="trials at a time (2)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every trial and of the baseline (3)")
    parser.add_argument("--pruner", type=lambda s: json.loads(s) if s.lstrip().startswith("{") else s, default="median",
                        help='the search\'s pruner: median (default), successive_halving, none, or JSON such as {"type": "median", "startup_trials": 2, "warmup_epochs": 1}')
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed (0)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--api", help="use the stack at this URL instead of starting one (needs --key)")
    parser.add_argument("--key", help="an API key of that stack")
    parser.add_argument("--workers", type=int, default=2, help="workers of the stack this script starts (2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker's training child (cores / workers)")
    parser.add_argument("--node", help="the Node.js (>= 22) that runs the API and the dispatcher")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds (3600)")
    parser.add_argument("--keep-logs", action="store_true", help="leave the stack's temporary directory and logs behind")
    args = parser.parse_args()
    if bool(args.api) != bool(args.key):
        parser.error("--api and --key go together")

    stack = None
    try:
        if args.api:
            api = Api(args.api, args.key)
        else:
            threads = args.threads or max(1, (os.cpu_count() or 2) // args.workers)
            stack = Stack(find_node(args.node), args.workers, threads)
            print(f"... starting the stack in {stack.dir} ({args.workers} workers, {threads} torch threads each)", file=sys.stderr, flush=True)
            stack.start()
            api = Api(stack.api_url, stack.key)
        out = run(api, args)
    except BaseException:
        if stack:
            print(stack.tail(), file=sys.stderr)
        raise
    finally:
        if stack:
            stack.stop(keep_dir=args.keep_logs)
            if args.keep_logs:
                print(f"... logs kept in {stack.dir}", file=sys.stderr)
    report(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    failed = [name for name in ("baseline", "tune") if out[name]["status"] != "succeeded"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
