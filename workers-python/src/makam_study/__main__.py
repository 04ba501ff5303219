"""`python -m makam_study`: the dispatcher's study process, JSON lines over stdin/stdout.

Environment: REDIS_URL (default redis://127.0.0.1:6379; may hold credentials, never printed);
with a rediss:// URL, MAKAM_REDIS_TLS_CA (the server's CA, else the system's), MAKAM_REDIS_TLS_CERT
and MAKAM_REDIS_TLS_KEY (a client pair for mutual TLS): PEM files, as the dispatcher's; for Redis
Sentinel, REDIS_SENTINELS, REDIS_SENTINEL_NAME and REDIS_SENTINEL_PASSWORD (makam_study.connection).

In: one JSON object per line, `{"id": <int>, "op": "<name>", ...args}`; blank lines are skipped.
Out: one line per request, in order: `{"id": <id>, "ok": true, "result": {...}}` or
`{"id": <id>, "ok": false, "error": {"code": "<code>", "message": "<text>"}}` (id null when the
line was not JSON, not an object, or had no integer id). Nothing else is written to stdout (logs
go to stderr). Numbers that are not finite are written as null. EOF on stdin: exit 0. The loop
goes on after every error.

The ops (ping, create, ask, report, tell, summary, fail_running, delete), each one's args and result, and
the error codes are written once, in contracts/study-protocol.json (JSON Schema with each op's
description); scripts/gen-study-protocol.ts generates makam_study/protocol.py from it (the
dispatcher's side: services/shared/src/tuning/study-protocol.gen.ts).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import sys
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_URL = "redis://127.0.0.1:6379"


def secrets_of(url: str) -> list[str]:
    """What must never be printed: the URL itself and its password (as written and decoded)."""
    found = {url}
    try:
        parts = urlsplit(url)
        for pw in [parts.password or ""] + parse_qs(parts.query).get("password", []):
            found |= {pw, unquote(pw)}
    except ValueError:
        pass
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


class RedactingFormatter(logging.Formatter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__("%(asctime)s makam_study %(levelname)s %(name)s: %(message)s")
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def finite(obj: Any) -> Any:
    """The reply with every non-finite float as null (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def main() -> int:
    # The protocol owns the real stdout; fd 1 then points at stderr, so nothing else (a library's
    # print, a C extension's write) can reach the client's stream.
    out = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8", line_buffering=True)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")

    url = os.environ.get("REDIS_URL") or DEFAULT_URL
    secrets = secrets_of(url) + [s for s in [os.environ.get("REDIS_SENTINEL_PASSWORD", "")] if len(s) >= 3]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)

    import optuna  # after the swap: whatever it prints on import goes to stderr

    from makam_study.connection import RedisTarget
    from makam_study.study import Studies, error, handle

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()  # through the redacting handler
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    studies = Studies(RedisTarget.from_env(os.environ))
    log = logging.getLogger("makam_study")
    log.info("ready (optuna %s)", optuna.__version__)
    try:
        while line := stdin.readline():
            if not line.strip():
                continue
            reply = handle(studies, line)
            if not reply["ok"]:
                reply["error"]["message"] = redact(reply["error"]["message"], secrets)
            try:
                text = json.dumps(finite(reply), allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as e:  # a result that is not JSON: a bug, answered as one
                log.error("reply to %s is not JSON: %s", reply.get("id"), e)
                text = json.dumps(error(reply.get("id"), "internal", "the reply could not be encoded"))
            out.write(text + "\n")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the client went away
        return 0
    finally:
        studies.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
