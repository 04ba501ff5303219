"""Errors that end a run with a stable error code, for the `finished` event."""


class TrainingError(Exception):
    """A run failure the dispatcher can act on: `code` is stable, `retryable` says if a retry may help."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class Cancelled(Exception):
    """SIGTERM arrived: the child exits without a `finished` event; the server writes CANCELLED."""
