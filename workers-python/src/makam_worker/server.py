"""The worker process: `makam-worker` / `python -m makam_worker`.

`create_server` builds a bound, not yet started server (tests bind 127.0.0.1:0); `main` owns the
process: logging, signals, and a graceful stop that ends runs in progress before the server stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from concurrent import futures
from pathlib import Path

import grpc

from makam.worker.v1 import worker_pb2_grpc
from makam_worker import __version__, logs
from makam_worker.servicer import WorkerServicer

logger = logging.getLogger("makam_worker.server")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
STOP_GRACE_S = 5.0
# Each WatchRun holds a thread while it streams; a dispatcher drives one run at a time per worker.
MAX_RPC_THREADS = 32


def build_server(
    address: str, state_dir: Path, *, cancel_grace_s: float = 5.0, worker_id: str = ""
) -> tuple[grpc.Server, int, WorkerServicer]:
    state_dir.mkdir(parents=True, exist_ok=True)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_RPC_THREADS, thread_name_prefix="makam-rpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    servicer = WorkerServicer(state_dir, cancel_grace_s=cancel_grace_s)
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not listen on {address}")
    servicer.worker_id = worker_id or f"{socket.gethostname()}:{port}"
    return server, port, servicer


def create_server(address: str, state_dir: Path, *, cancel_grace_s: float = 5.0) -> tuple[grpc.Server, int]:
    """A server bound to `address`, not started; returns it with the bound port (useful with port 0)."""
    server, port, _ = build_server(address, state_dir, cancel_grace_s=cancel_grace_s)
    return server, port


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="makam-worker", description="makam's gRPC training worker")
    parser.add_argument("--listen", default=os.environ.get("MAKAM_WORKER_LISTEN", "127.0.0.1:50051"),
                        help="host:port to listen on (env MAKAM_WORKER_LISTEN; default 127.0.0.1:50051)")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("MAKAM_WORKER_STATE_DIR", "./var/worker")),
                        help="datasets and runs live here (env MAKAM_WORKER_STATE_DIR; default ./var/worker)")
    parser.add_argument("--worker-id", default=os.environ.get("MAKAM_WORKER_ID", ""),
                        help="the id in GetCapabilities (env MAKAM_WORKER_ID; default host:port)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logs.configure()
    server, port, servicer = build_server(args.listen, args.state_dir.resolve(), worker_id=args.worker_id)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.set())
    server.start()
    logger.info("makam-worker %s listening on %s (port %d) as %s, state dir %s",
                __version__, args.listen, port, servicer.worker_id, args.state_dir.resolve())
    while not stopping.wait(1.0):
        pass
    logger.info("stopping: ending %d run(s) in progress", servicer.runs.active_runs())
    servicer.runs.stop_all()  # their watchers get the final events before the server goes
    server.stop(STOP_GRACE_S).wait()
    logger.info("stopped")
    return 0
