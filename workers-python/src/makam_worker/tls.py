"""TLS for the gRPC channel, configured by files: the worker's certificate and key, and the CA
that signed the dispatchers' client certificates (mutual TLS). Unset, the worker listens in
plaintext, as on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None

    @classmethod
    def from_env(cls, cert: str | None = None, key: str | None = None, client_ca: str | None = None) -> "TlsFiles | None":
        cert = cert or os.environ.get("MAKAM_WORKER_TLS_CERT")
        key = key or os.environ.get("MAKAM_WORKER_TLS_KEY")
        client_ca = client_ca or os.environ.get("MAKAM_WORKER_TLS_CLIENT_CA")
        if not cert and not key:
            if client_ca:
                raise ValueError("MAKAM_WORKER_TLS_CLIENT_CA needs MAKAM_WORKER_TLS_CERT and MAKAM_WORKER_TLS_KEY too")
            return None
        if not (cert and key):
            raise ValueError("set both MAKAM_WORKER_TLS_CERT and MAKAM_WORKER_TLS_KEY (PEM files), or neither")
        return cls(Path(cert), Path(key), Path(client_ca) if client_ca else None)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Requires a client certificate signed by client_ca when one is given (mTLS)."""
        ca = _read(self.client_ca, "MAKAM_WORKER_TLS_CLIENT_CA") if self.client_ca else None
        return grpc.ssl_server_credentials(
            [(_read(self.key, "MAKAM_WORKER_TLS_KEY"), _read(self.cert, "MAKAM_WORKER_TLS_CERT"))],
            root_certificates=ca, require_client_auth=ca is not None,
        )


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ValueError(f"{variable}: cannot read {path} ({e.strerror}); make the certificates "
                         "(sh docker/grpc-certs.sh DIR) or point the variable at yours") from None


def client_credentials(ca: str | None, cert: str | None, key: str | None) -> grpc.ChannelCredentials:
    """Credentials for a client of the worker (the health check): the worker's CA and our client pair."""
    read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
    return grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
