"""makam's training worker: a gRPC server that fine-tunes text classifiers in child processes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("makam-worker")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
