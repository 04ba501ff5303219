"""The hyperparameters of a run, checked again here as the worker's own guard.

The dataclass, its bounds and its per-family defaults are generated from contracts/hyperparameters.json
(makam_worker.contracts.hyperparameters), the same file the API's schema comes from, so the worker
accepts exactly what the API accepts. `{}` is a valid request for every family; a key that does not
apply to the family (a LoRA rank for `tfidf`, say) is refused, naming the family it belongs to.

This module must stay importable without torch: the server uses it to refuse bad hyperparameters at
StartRun before a child process is spawned.
"""

from __future__ import annotations

from makam_worker.contracts.hyperparameters import FAMILIES, Hyperparameters

__all__ = ["FAMILIES", "Hyperparameters", "main"]


def main(argv: list[str] | None = None) -> int:
    """`python -m makam_worker.training.config FAMILY`: the defaults of FAMILY as JSON (for contract tests)."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in FAMILIES:
        print(f"usage: python -m makam_worker.training.config {{{'|'.join(FAMILIES)}}}", file=sys.stderr)
        return 2
    print(json.dumps(Hyperparameters.from_dict({}, args[0]).to_dict(), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
