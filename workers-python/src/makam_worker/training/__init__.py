"""The training side of the worker: runs in a child process, `python -m makam_worker.training.child <run_dir>`."""
