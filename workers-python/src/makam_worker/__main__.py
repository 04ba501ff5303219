"""`python -m makam_worker` starts the gRPC server."""

from makam_worker.server import main

if __name__ == "__main__":
    raise SystemExit(main())
