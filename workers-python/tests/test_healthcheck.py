"""The health check that container HEALTHCHECKs and Kubernetes exec probes run beside the worker."""

import socket
import subprocess
import sys

import pytest

from makam_worker import healthcheck
from makam_worker.server import create_server


@pytest.fixture(scope="module")
def worker_port(tmp_path_factory):
    server, port = create_server("127.0.0.1:0", tmp_path_factory.mktemp("state"))
    server.start()
    yield port
    server.stop(0).wait()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket goes: nothing listens there


def test_a_running_worker_is_healthy(worker_port, capsys):
    # The first GetCapabilities imports torch: give it time here, as a container's start period does.
    assert healthcheck.main(["--address", f"127.0.0.1:{worker_port}", "--timeout", "60"]) == 0
    assert capsys.readouterr().out.startswith(f"healthy: 127.0.0.1:{worker_port}: ")


def test_no_worker_is_unhealthy_within_the_deadline(capsys):
    assert healthcheck.main(["--address", f"127.0.0.1:{closed_port()}", "--timeout", "2"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_the_module_runs_as_a_command_with_exit_codes(worker_port):
    ok = subprocess.run([sys.executable, "-m", "makam_worker.healthcheck", "--address", f"127.0.0.1:{worker_port}",
                         "--timeout", "60"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "makam_worker.healthcheck", "--address", f"127.0.0.1:{closed_port()}",
                          "--timeout", "2"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr.startswith("unhealthy: ")


@pytest.mark.parametrize(("listen", "address"), [
    ("0.0.0.0:50051", "127.0.0.1:50051"),
    ("[::]:6000", "127.0.0.1:6000"),
    ("worker-bert:50051", "worker-bert:50051"),
    ("127.0.0.1:7000", "127.0.0.1:7000"),
])
def test_the_default_address_follows_the_listen_address(listen, address):
    assert healthcheck.default_address(listen) == address


def test_the_default_address_reads_makam_worker_listen(monkeypatch):
    monkeypatch.setenv("MAKAM_WORKER_LISTEN", "0.0.0.0:50999")
    assert healthcheck.default_address() == "127.0.0.1:50999"
    monkeypatch.delenv("MAKAM_WORKER_LISTEN")
    assert healthcheck.default_address() == "127.0.0.1:50051"
