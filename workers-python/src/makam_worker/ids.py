"""Checks for the ids that become file names, run before any of them touches a path."""

import re

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def is_valid_run_id(run_id: str) -> bool:
    """True for 1-128 characters of letters, digits, '_' and '-' (no dots, so no '..')."""
    return RUN_ID_PATTERN.fullmatch(run_id) is not None


def is_valid_sha256(sha256: str) -> bool:
    """True for 64 lowercase hex digits."""
    return SHA256_PATTERN.fullmatch(sha256) is not None
