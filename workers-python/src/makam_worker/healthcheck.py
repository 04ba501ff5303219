"""`python -m makam_worker.healthcheck`: exits 0 when the worker answers GetCapabilities in time, 1 if not.

Container health checks and Kubernetes exec probes run it beside the worker. `--address` defaults to
the worker's own MAKAM_WORKER_LISTEN with a wildcard host (0.0.0.0, [::]) turned into loopback.
The first GetCapabilities of a worker imports torch, so give a fresh worker a start period.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from makam.worker.v1 import worker_pb2, worker_pb2_grpc
from makam_worker.tls import client_credentials

DEFAULT_TIMEOUT_S = 5.0


def default_address(listen: str | None = None) -> str:
    listen = listen or os.environ.get("MAKAM_WORKER_LISTEN") or "127.0.0.1:50051"
    host, sep, port = listen.rpartition(":")
    if not sep:
        return "127.0.0.1:50051"
    if host in ("", "0.0.0.0", "[::]", "::", "*"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def check(address: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[bool, str]:
    """(healthy, what to print): one GetCapabilities call with a deadline."""
    try:
        ca = os.environ.get("MAKAM_GRPC_TLS_CA")
        # With TLS on the worker, probe it as a dispatcher would: the same CA and client pair.
        channel = (grpc.secure_channel(address, client_credentials(ca, os.environ.get("MAKAM_GRPC_TLS_CERT"), os.environ.get("MAKAM_GRPC_TLS_KEY")))
                   if ca else grpc.insecure_channel(address))
        with channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            response = stub.GetCapabilities(worker_pb2.GetCapabilitiesRequest(), timeout=timeout_s)
    except grpc.RpcError as err:
        code = err.code() if hasattr(err, "code") else None
        details = err.details() if hasattr(err, "details") else str(err)
        return False, f"{address}: {code.name if code else 'error'}: {details}"
    return True, (f"{address}: {response.worker_id} device={response.device}"
                  f"{' ' + response.gpu_name if response.gpu_name else ''} active_runs={response.active_runs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m makam_worker.healthcheck",
                                     description="exit 0 when the makam worker answers GetCapabilities, 1 otherwise")
    parser.add_argument("--address", default=None,
                        help="host:port of the worker (default: MAKAM_WORKER_LISTEN, wildcard host as 127.0.0.1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"deadline of the call in seconds (default {DEFAULT_TIMEOUT_S:g})")
    args = parser.parse_args(argv)
    ok, message = check(args.address or default_address(), args.timeout)
    print(("healthy: " if ok else "unhealthy: ") + message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
