"""makam's study process: runs the Optuna studies of tune jobs for the TypeScript dispatcher.

`python -m makam_study` speaks JSON lines over stdin/stdout (the protocol is in `__main__.py`);
the operations are in `study.py`. The studies live in Redis (Optuna's journal storage), so any
dispatcher's child, or a restarted one, sees the same study.
"""

import sys as _sys

# redis-py imports its asyncio client (which this package never uses) on `import redis`, and on
# Python below 3.11.3 that wants the async-timeout package, which the local wheel mirror lacks.
# asyncio.timeout (3.11+) is the same context manager; stand it in only when the package is absent.
if _sys.version_info < (3, 11, 3):
    try:
        import async_timeout as _async_timeout  # noqa: F401
    except ModuleNotFoundError:
        import asyncio as _asyncio
        import types as _types

        _shim = _types.ModuleType("async_timeout")
        _shim.timeout = _asyncio.timeout  # type: ignore[attr-defined]
        _sys.modules["async_timeout"] = _shim
