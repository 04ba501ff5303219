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
from makam_worker import __version__, logs, warm
from makam_worker.servicer import WorkerServicer
from makam_worker.settings import Limits, allow_insecure, cpu_budget, is_loopback, limits_from_env, warm_process_enabled
from makam_worker.training.model_limits import check_settings as check_model_settings
from makam_worker.tls import TlsFiles

logger = logging.getLogger("makam_worker.server")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
STOP_GRACE_S = 5.0
# Each WatchRun holds a thread while it streams; a dispatcher drives one run at a time per worker.
MAX_RPC_THREADS = 32


INSECURE_FIX = ("set MAKAM_WORKER_TLS_CERT, MAKAM_WORKER_TLS_KEY and MAKAM_WORKER_TLS_CLIENT_CA (mutual TLS; "
                "docker/grpc-certs.sh makes them), or listen on 127.0.0.1")


def build_server(
    address: str, state_dir: Path, *, cancel_grace_s: float = 5.0, worker_id: str = "", tls: TlsFiles | None = None,
    limits: Limits | None = None,
) -> tuple[grpc.Server, int, WorkerServicer]:
    state_dir.mkdir(parents=True, exist_ok=True)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=MAX_RPC_THREADS, thread_name_prefix="makam-rpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Dispatchers ping to notice a hung or cut-off worker; allow their pings, even between calls.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
            ("grpc.http2.max_ping_strikes", 0),
        ],
    )
    servicer = WorkerServicer(state_dir, cancel_grace_s=cancel_grace_s, limits=limits)
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(servicer, server)
    port = server.add_secure_port(address, tls.server_credentials()) if tls else server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not listen on {address}")
    servicer.worker_id = worker_id or f"{socket.gethostname()}:{port}"
    return server, port, servicer


def create_server(address: str, state_dir: Path, *, cancel_grace_s: float = 5.0,
                  limits: Limits | None = None) -> tuple[grpc.Server, int]:
    """A server bound to `address`, not started; returns it with the bound port (useful with port 0).
    Its sweeper of expired runs is started (with the server's own start it would be the caller's to do)."""
    server, port, servicer = build_server(address, state_dir, cancel_grace_s=cancel_grace_s, limits=limits)
    servicer.start_sweeper()
    return server, port


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="makam-worker", description="makam's gRPC training worker")
    parser.add_argument("--listen", default=os.environ.get("MAKAM_WORKER_LISTEN", "127.0.0.1:50051"),
                        help="host:port to listen on (env MAKAM_WORKER_LISTEN; default 127.0.0.1:50051)")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("MAKAM_WORKER_STATE_DIR", "./var/worker")),
                        help="datasets and runs live here (env MAKAM_WORKER_STATE_DIR; default ./var/worker)")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate for TLS (env MAKAM_WORKER_TLS_CERT)")
    parser.add_argument("--tls-key", default=None, help="PEM private key for TLS (env MAKAM_WORKER_TLS_KEY)")
    parser.add_argument("--tls-client-ca", default=None,
                        help="PEM CA of the dispatchers' client certificates; set, clients must present one (mTLS) "
                             "(env MAKAM_WORKER_TLS_CLIENT_CA)")
    parser.add_argument("--worker-id", default=os.environ.get("MAKAM_WORKER_ID", ""),
                        help="the id in GetCapabilities (env MAKAM_WORKER_ID; default host:port)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logs.configure()
    try:
        tls = TlsFiles.from_env(args.tls_cert, args.tls_key, args.tls_client_ca)
        limits = limits_from_env()
        insecure_ok = allow_insecure()
        warm_ok = warm_process_enabled()
        cpu_budget()  # MAKAM_WORKER_CPUS: a bad value is named at start, not at the first run
        check_model_settings()  # MAKAM_MODEL_ROOTS, MAKAM_WORKER_MEMORY_BYTES: named at start, not at the first run
    except ValueError as e:
        logger.error("bad configuration: %s", e)
        return 2
    if (tls is None or tls.client_ca is None) and not is_loopback(args.listen):
        # Anyone who reaches an unauthenticated port can start runs, read every run's model and fill the disk.
        if not insecure_ok:
            logger.error("refusing to listen on %s without client authentication: anyone who reaches it could "
                         "start runs and fetch models; %s (or set MAKAM_WORKER_ALLOW_INSECURE=1 on a network "
                         "only dispatchers reach)", args.listen, INSECURE_FIX)
            return 2
        logger.warning("INSECURE: listening on %s without client authentication (MAKAM_WORKER_ALLOW_INSECURE=1): "
                       "anyone who reaches this port can start runs and fetch models; %s",
                       args.listen, INSECURE_FIX)
    try:
        server, port, servicer = build_server(args.listen, args.state_dir.resolve(), worker_id=args.worker_id, tls=tls,
                                              limits=limits)
    except ValueError as e:
        logger.error("bad configuration: %s", e)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.set())
    server.start()
    servicer.start_sweeper()
    if warm_ok:
        warm.shared().start()  # in the background: runs start cold until it is ready
    logger.info("makam-worker %s listening on %s (port %d, %s) as %s, state dir %s",
                __version__, args.listen, port, ("mTLS" if tls.client_ca else "TLS") if tls else "plaintext",
                servicer.worker_id, args.state_dir.resolve())
    while not stopping.wait(1.0):
        pass
    logger.info("stopping: ending %d run(s) in progress", servicer.runs.active_runs())
    servicer.stop_sweeper()
    servicer.runs.stop_all()  # their watchers get the final events before the server goes
    server.stop(STOP_GRACE_S).wait()
    logger.info("stopped")
    return 0
