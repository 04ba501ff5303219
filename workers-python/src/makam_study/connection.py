"""How the study process reaches Redis: the dispatcher's settings, handed over as environment.

REDIS_URL alone names the server. With REDIS_SENTINELS (host:port,...) the primary is the one the
sentinels call REDIS_SENTINEL_NAME (default mymaster), asked for again after a failover; the URL
then gives only the scheme (rediss: TLS to sentinels and nodes), the credentials and the database,
and REDIS_SENTINEL_PASSWORD is the sentinels' own. The dispatcher has checked all of this at start
(services/shared/src/redis.ts); these are the same rules in redis-py's terms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

# The dispatcher's Redis TLS settings (PEM file paths), as redis-py's SSL connection takes them.
TLS_ENV = {
    "MAKAM_REDIS_TLS_CA": "ssl_ca_certs",
    "MAKAM_REDIS_TLS_CERT": "ssl_certfile",
    "MAKAM_REDIS_TLS_KEY": "ssl_keyfile",
}
DEFAULT_URL = "redis://127.0.0.1:6379"
TIMEOUTS = {"socket_connect_timeout": 10, "socket_timeout": 30}


def tls_options(url: str, env: Mapping[str, str]) -> dict[str, str]:
    """redis-py keyword arguments for the TLS files in `env`; none for a plaintext URL (which the
    dispatcher never pairs with TLS files: it refuses that configuration at start)."""
    if not url.lower().startswith("rediss://"):
        return {}
    return {arg: env[name] for name, arg in TLS_ENV.items() if env.get(name)}


def parse_sentinels(text: str) -> list[tuple[str, int]]:
    out = []
    for entry in text.split(","):
        m = re.fullmatch(r"\s*(\[[0-9a-fA-F:.]+\]|[^\s:,\[\]]+):([0-9]{1,5})\s*", entry)
        if not m:
            raise ValueError(f'REDIS_SENTINELS: "{entry}" is not host:port')
        out.append((m.group(1).strip("[]"), int(m.group(2))))
    return out


@dataclass(frozen=True)
class RedisTarget:
    url: str = DEFAULT_URL
    tls: dict[str, str] = field(default_factory=dict)
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    sentinel_name: str = "mymaster"
    sentinel_password: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisTarget:
        url = env.get("REDIS_URL") or DEFAULT_URL
        return cls(
            url=url,
            tls=tls_options(url, env),
            sentinels=parse_sentinels(env["REDIS_SENTINELS"]) if env.get("REDIS_SENTINELS") else [],
            sentinel_name=env.get("REDIS_SENTINEL_NAME") or "mymaster",
            sentinel_password=env.get("REDIS_SENTINEL_PASSWORD") or None,
        )

    def client(self) -> redis.Redis:
        """A client of the primary. Through sentinels, redis-py's SentinelConnectionPool asks them
        for the primary on every new connection and drops its connections when one answers
        READONLY, so a command retried after a failover reaches the new primary."""
        if not self.sentinels:
            return redis.Redis.from_url(self.url, **TIMEOUTS, **self.tls)
        parts = urlsplit(self.url)
        ssl: dict[str, Any] = {"ssl": True, **self.tls} if parts.scheme.lower() == "rediss" else {}
        node = {
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "db": int(parts.path.lstrip("/") or 0),
        }
        sentinel = Sentinel(
            self.sentinels,
            sentinel_kwargs={"password": self.sentinel_password, **TIMEOUTS, **ssl},
            **TIMEOUTS,
            **ssl,
        )
        return sentinel.master_for(self.sentinel_name, **node)
