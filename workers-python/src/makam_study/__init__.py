"""makam's study process: runs the Optuna studies of tune jobs for the TypeScript dispatcher.

`python -m makam_study` speaks JSON lines over stdin/stdout (the protocol is in `__main__.py`);
the operations are in `study.py`. The studies live in Redis (Optuna's journal storage), so any
dispatcher's child, or a restarted one, sees the same study.
"""
