"""The study operations behind `python -m makam_study` (the protocol is in `__main__.py`).

A study lives in Redis through Optuna's journal storage, under the key prefix the request names
(`makam:study:<job id>`), as the one study called "makam" there. Its configuration (space,
direction, sampler, pruner, seed, trial budget) is the study user attr `makam_config`, so every
operation rebuilds its sampler and pruner from the storage and any process can serve it. Loaded
studies are cached per key; the journal storage reads the logs other processes appended on every
access.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import jsonschema
import optuna
import redis
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalRedisBackend
from optuna.trial import FrozenTrial, TrialState

from makam_study import protocol
from makam_study.connection import RedisTarget, tls_options  # noqa: F401 - tls_options: its old home

STUDY_NAME = "makam"
CONFIG_ATTR = "makam_config"
SEED_STRIDE = 1_000_003
MAX_GRID_POINTS = 100_000
CACHE_SIZE = 32
# How long a journal log that the log counter says exists may stay missing (a writer between its
# INCR and SET never happens with the atomic script; a missing log means the keys were deleted).
LOG_WAIT_S = 10.0
LOG_BATCH = 256

# The protocol's ops, args, enums and codes: generated from contracts/study-protocol.json.
TELL_STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "fail": TrialState.FAIL}
assert tuple(TELL_STATES) == protocol.ENUMS["state"], "tell states differ from contracts/study-protocol.json"

log = logging.getLogger("makam_study")


class StudyError(Exception):
    """An error answered to the client with its code (`bad_request`, `not_found`, `conflict`, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad_request(message: str) -> StudyError:
    return StudyError("bad_request", message)


# ---------------------------------------------------------------------------- argument checks


def _is_integer(_checker: Any, value: Any) -> bool:
    # JSON Schema's integer takes 1.0; the ops want an int (Optuna's int params, trial numbers).
    # bool, an int subclass, is already refused by jsonschema's checker for integer and number.
    return type(value) is int


# The contract's schemas use $defs and prefixItems: draft 2020-12. Compiled once, here.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)
ARG_VALIDATORS = {}
for _op, _schema in protocol.ARGS_SCHEMAS.items():
    _Validator.check_schema({"$defs": protocol.DEFS, **_schema})
    ARG_VALIDATORS[_op] = _Validator({"$defs": protocol.DEFS, **_schema})

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "a boolean",
               "object": "an object", "array": "a list", "null": "null"}


def _where(path: Any) -> str:
    """A JSON path as the messages name it: space.lr.low, keep[2]."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _rank(e: jsonschema.ValidationError) -> tuple[int, int]:
    # Shallowest first; at one level an unknown or missing arg before what is wrong inside one.
    return len(e.absolute_path), {"additionalProperties": 0, "required": 1}.get(str(e.validator), 2)


def _describe(e: jsonschema.ValidationError, op: str) -> str:
    """A schema error as a message naming the field by its path (the op's name for the args)."""
    where, v, want = _where(e.absolute_path) or op, e.validator, e.validator_value
    if v == "anyOf":
        # The contract's anyOfs (ParamSpace) tell their branches apart by a const (the type):
        # report what is wrong in the branch whose const matched, or that none did.
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for c in e.context or ():
            branches.setdefault(c.relative_schema_path[0], []).append(c)
        consts = [c for c in e.context or () if c.validator == "const"]
        live = [errs for errs in branches.values() if not any(c.validator == "const" for c in errs)]
        # No branch ruled out (no type given): what every branch misses, the type first of all.
        missing = [
            {k for c in errs if c.validator == "required" and not c.relative_path for k in c.validator_value if k not in c.instance}
            for errs in live
        ]
        common = set.intersection(*missing) if len(live) > 1 else set()
        if common:
            return f"{where}: missing {', '.join(sorted(common))}"
        if live:
            return _describe(min(live[0], key=_rank), op)
        if consts:
            return f"{_where(consts[0].absolute_path)} must be one of {', '.join(str(c.validator_value) for c in consts)}"
    elif v == "required":
        return f"{where}: missing {', '.join(k for k in want if k not in e.instance)}"
    elif v == "additionalProperties":
        return f"{where}: unknown {', '.join(sorted(k for k in e.instance if k not in e.schema.get('properties', {})))}"
    elif v == "type":
        return f"{where} must be {' or '.join(_TYPE_NAMES.get(t, t) for t in ([want] if isinstance(want, str) else want))}"
    elif v in ("enum", "const"):
        return f"{where} must be {'one of ' + ', '.join(map(str, want)) if v == 'enum' else want}"
    elif v == "minimum":
        return f"{where} must be at least {want}"
    elif v in ("minLength", "minItems", "minProperties") and want == 1:
        return f"{where} must not be empty"
    return f"{where}: {e.message}"


def check_args(op: str, args: Mapping[str, Any]) -> None:
    """The op's args against the contract's schema: bad_request naming the first field wrong."""
    errors = list(ARG_VALIDATORS[op].iter_errors(args))
    if errors:
        raise bad_request(_describe(min(errors, key=_rank), op)[:300])


def _non_finite(value: Any, where: str) -> str | None:
    """The path of a NaN/Infinity inside value: JSON has none, but Python's json reads them."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{where}[{k}]" if isinstance(k, int) else f"{where}.{k}")
        if found:
            return found
    return None


# ---------------------------------------------------------------------------- space and config


def distributions(space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """The space (checked against the contract's ParamSpace) as Optuna distributions, in its order."""
    out: dict[str, BaseDistribution] = {}
    for name, spec in space.items():
        try:
            if spec["type"] == "int":
                out[name] = IntDistribution(spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1))
            elif spec["type"] == "float":
                step = spec.get("step")
                out[name] = FloatDistribution(
                    float(spec["low"]),
                    float(spec["high"]),
                    log=spec.get("log", False),
                    step=None if step is None else float(step),
                )
            else:
                out[name] = CategoricalDistribution(spec["choices"])
        except ValueError as e:  # Optuna refuses the distribution (low > high, log with step, ...)
            raise bad_request(f"space.{name}: {e}") from None
    return out


def grid_values(dists: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every value of every parameter for the grid sampler (float parameters need a step)."""
    sizes: dict[str, int] = {}
    for name, d in dists.items():
        if isinstance(d, CategoricalDistribution):
            sizes[name] = len(d.choices)
        elif isinstance(d, IntDistribution):
            sizes[name] = len(range(d.low, d.high + 1, d.step))
        elif isinstance(d, FloatDistribution):
            if d.step is None:
                raise bad_request(f"space.{name}: grid search needs a step for a float parameter")
            sizes[name] = int(math.floor((d.high - d.low) / d.step + 1e-9)) + 1
    if math.prod(sizes.values()) > MAX_GRID_POINTS:
        raise bad_request(f"the grid has {math.prod(sizes.values())} points; at most {MAX_GRID_POINTS}")
    out: dict[str, list[Any]] = {}
    for name, d in dists.items():
        if isinstance(d, CategoricalDistribution):
            out[name] = list(d.choices)
        elif isinstance(d, IntDistribution):
            out[name] = list(range(d.low, d.high + 1, d.step))
        else:
            assert isinstance(d, FloatDistribution) and d.step is not None
            # 12 significant digits: 0.1 + 2 * 0.1 is 0.3, not 0.30000000000000004.
            out[name] = [float(f"{d.low + i * d.step:.12g}") for i in range(sizes[name])]
    return out


def parse_config(args: Mapping[str, Any]) -> dict[str, Any]:
    """The create request's config (its args checked against the contract; Optuna builds the space
    once to refuse what it refuses)."""
    config = {k: args[k] for k in ("space", "direction", "sampler", "pruner", "seed", "trials")}
    bad = _non_finite(config["space"], "space")
    if bad:
        raise bad_request(f"{bad} must be finite")
    dists = distributions(config["space"])
    if config["sampler"] == "grid":
        grid_values(dists)
    # What the storage will hand back (JSON), so a second create compares equal.
    return json.loads(json.dumps(config, allow_nan=False))


def build_sampler(config: Mapping[str, Any], n_trials: int) -> optuna.samplers.BaseSampler:
    """The sampler for the next ask. Seeded from (config seed, trials so far): reproducible, and a
    restarted process never replays a stream an earlier ask used."""
    seed = (config["seed"] * SEED_STRIDE + n_trials) % 2**32
    kind = config["sampler"]
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, config["trials"] // 5)))
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # The grid sampler maps grid_id -> point through a shuffle seeded by its seed, and the first
    # asks take grid_id = trial number: its seed must stay the same for the whole study, or two
    # asks could land on the same point.
    return optuna.samplers.GridSampler(grid_values(distributions(config["space"])), seed=config["seed"] % 2**32)


def build_pruner(config: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    p = config["pruner"]
    if p["type"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.get("startup_trials", max(1, min(5, config["trials"] // 4))),
            # Steps are epochs counted from 1, and Optuna prunes from step n_warmup_steps on: so
            # warmup_epochs W keeps epochs 1..W from being pruned.
            n_warmup_steps=p.get("warmup_epochs", 1) + 1,
        )
    if p["type"] == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------------------- storage


class RedisJournal(JournalRedisBackend):
    """Optuna's Redis journal backend, with socket timeouts, logs read in batches (MGET), and a
    bounded wait for a missing log (upstream waits forever, which would hang every study this
    process serves when a study's keys are deleted under it)."""

    def __init__(self, target: RedisTarget, prefix: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(target.url, prefix=prefix)
        self._redis.close()
        self._redis = target.client()

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        last = self._redis.get(f"{self._prefix}:log_number")
        if last is None:
            return
        last_number = int(last)
        for start in range(log_number_from, last_number + 1, LOG_BATCH):
            numbers = range(start, min(start + LOG_BATCH, last_number + 1))
            for number, raw in zip(numbers, self._redis.mget([self._key_log_id(n) for n in numbers])):
                waited, sleep = 0.0, 0.05
                while raw is None:
                    if waited >= LOG_WAIT_S:
                        raise StudyError("internal", f"journal log {number} of the study is missing")
                    time.sleep(sleep)
                    waited += sleep
                    sleep = min(sleep * 2, 1.0)
                    raw = self._redis.get(self._key_log_id(number))
                try:
                    yield json.loads(raw)
                except json.JSONDecodeError:
                    if number != last_number:
                        raise
                    return  # read again next time, as upstream does

    def delete(self) -> bool:
        """Removes the journal's keys: the logs first, the log counter last, so a delete cut short
        is finished by the next (the counter still says how many logs there were). Whether there
        was anything to remove."""
        last = self._redis.get(f"{self._prefix}:log_number")
        existed = last is not None or bool(self._redis.exists(f"{self._prefix}:snapshot"))
        top = int(last) if last is not None else -1
        for start in range(0, top + 1, LOG_BATCH):
            self._redis.delete(*[self._key_log_id(n) for n in range(start, min(start + LOG_BATCH, top + 1))])
        self._redis.delete(f"{self._prefix}:snapshot", f"{self._prefix}:log_number")
        return existed

    def close(self) -> None:
        self._redis.close()


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


class Studies:
    """The studies one process serves, cached per key (least recently used dropped past CACHE_SIZE)."""

    def __init__(self, target: RedisTarget | str, cache_size: int = CACHE_SIZE) -> None:
        self._target = RedisTarget(url=target) if isinstance(target, str) else target
        self._cache: OrderedDict[str, optuna.Study] = OrderedDict()
        self._cache_size = cache_size
        # For operations that must not sample: its before_trial/after_trial do nothing (the grid
        # sampler's after_trial calls study.stop(), which raises outside optimize()).
        self._inert = optuna.samplers.RandomSampler(seed=0)

    # -- cache

    def _storage(self, key: str) -> JournalStorage:
        return JournalStorage(RedisJournal(self._target, key))

    def _remember(self, key: str, study: optuna.Study) -> None:
        self._cache[key] = study
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            _, old = self._cache.popitem(last=False)
            _close(old)

    def forget(self, key: str) -> None:
        """Drops the cached study (after an error left its in-memory replay in doubt)."""
        study = self._cache.pop(key, None)
        if study is not None:
            _close(study)

    def close(self) -> None:
        for key in list(self._cache):
            self.forget(key)

    def _load(self, key: str) -> tuple[optuna.Study, dict[str, Any]]:
        study = self._cache.get(key)
        if study is None:
            storage = self._storage(key)
            try:
                study = optuna.load_study(
                    study_name=STUDY_NAME, storage=storage, sampler=self._inert, pruner=optuna.pruners.NopPruner()
                )
            except KeyError:
                storage._backend.close()  # type: ignore[attr-defined]
                raise StudyError("not_found", "no study under this key (create it first)") from None
            self._remember(key, study)
        else:
            self._cache.move_to_end(key)
        config = study.user_attrs.get(CONFIG_ATTR)
        if config is None:
            raise StudyError("not_found", "the study has no makam config (create it first)")
        return study, config

    @staticmethod
    def _trial_id(study: optuna.Study, number: int) -> int:
        try:
            return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        except KeyError:
            raise StudyError("not_found", f"no trial {number} in the study") from None

    # -- operations

    def create(self, key: str, config: dict[str, Any]) -> dict[str, Any]:
        study = self._cache.get(key)
        if study is None:
            study = optuna.create_study(
                storage=self._storage(key),
                study_name=STUDY_NAME,
                direction=config["direction"],
                load_if_exists=True,
                sampler=self._inert,
                pruner=optuna.pruners.NopPruner(),
            )
            self._remember(key, study)
        stored = study.user_attrs.get(CONFIG_ATTR)
        if stored is not None:
            if stored != config:
                raise StudyError("conflict", "the study exists with a different config")
            return {"created": False}
        if study.direction.name.lower() != config["direction"]:
            raise StudyError("conflict", f"the study exists with direction {study.direction.name.lower()}")
        study.set_user_attr(CONFIG_ATTR, config)
        return {"created": True}

    def ask(self, key: str) -> dict[str, Any]:
        study, config = self._load(key)
        trials = study.get_trials(deepcopy=False)
        dists = distributions(config["space"])
        asked: set[int] = set()
        if config["sampler"] == "grid":
            asked = {t.system_attrs["grid_id"] for t in trials if "grid_id" in t.system_attrs}
            if len(asked) >= math.prod(len(v) for v in grid_values(dists).values()):
                return {"number": None, "params": None}
        study.sampler = build_sampler(config, len(trials))
        try:
            trial = study.ask(fixed_distributions=dists)
        finally:
            study.sampler = self._inert
        if config["sampler"] == "grid":
            grid_id = study._storage.get_trial_system_attrs(trial._trial_id).get("grid_id")
            if grid_id is None or grid_id in asked:  # another asker raced this one
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
                raise StudyError("conflict", "another process asked the same grid point; ask again")
        return {"number": trial.number, "params": trial.params}

    def report(self, key: str, number: int, step: int, value: float) -> dict[str, Any]:
        study, config = self._load(key)
        trial_id = self._trial_id(study, number)
        if study._storage.get_trial(trial_id).state != TrialState.RUNNING:
            return {"prune": False}
        study.sampler = self._inert
        study.pruner = build_pruner(config)
        trial = optuna.trial.Trial(study, trial_id)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "this step is already reported": ignored on purpose
                trial.report(value, step)
        except optuna.exceptions.UpdateFinishedTrialError:
            return {"prune": False}  # finished between the check and the write
        return {"prune": bool(trial.should_prune())}

    def tell(self, key: str, number: int, state: str, value: float | None) -> dict[str, Any]:
        study, _ = self._load(key)
        trial_id = self._trial_id(study, number)
        if study._storage.get_trial(trial_id).state.is_finished():
            return {"told": False}
        trial_state = TELL_STATES[state]
        values = None
        if trial_state == TrialState.COMPLETE:
            if value is not None and math.isfinite(value):
                values = [value]
            else:
                trial_state = TrialState.FAIL
        study.sampler = self._inert
        try:
            study.tell(number, values, state=trial_state, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            return {"told": False}
        return {"told": True}

    def fail_running(self, key: str, keep: list[int]) -> dict[str, Any]:
        study, _ = self._load(key)
        study.sampler = self._inert
        keep_set = set(keep)
        failed = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number in keep_set:
                continue
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            failed.append(t.number)
        return {"failed": failed}

    def delete(self, key: str) -> dict[str, Any]:
        """Removes the study from Redis (its tune job's record goes; retention) and forgets it."""
        self.forget(key)
        journal = RedisJournal(self._target, key)
        try:
            return {"deleted": journal.delete()}
        finally:
            journal.close()

    def summary(self, key: str, importances: bool = False) -> dict[str, Any]:
        study, config = self._load(key)
        trials = study.get_trials(deepcopy=False)
        best = _best(trials, config["direction"])
        return {
            "trials": [
                {
                    "number": t.number,
                    "state": t.state.name,
                    "params": t.params,
                    "value": _finite_or_none(t.value) if t.values else None,
                    "intermediate": [[s, _finite_or_none(v)] for s, v in sorted(t.intermediate_values.items())],
                    "started_at": _iso(t.datetime_start),
                    "finished_at": _iso(t.datetime_complete),
                }
                for t in trials
            ],
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params},
            "importances": _importances(study, trials) if importances else None,
        }


def _close(study: optuna.Study) -> None:
    try:
        study._storage._backend.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def _best(trials: list[FrozenTrial], direction: str) -> FrozenTrial | None:
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(done, key=lambda t: (sign * t.value, t.number))  # ties: the earliest trial


def _importances(study: optuna.Study, trials: list[FrozenTrial]) -> dict[str, float] | None:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(done) < 2:
        return None
    seen: dict[str, set[str]] = {}
    for t in done:
        for name, v in t.params.items():
            seen.setdefault(name, set()).add(json.dumps(v))
    if sum(len(vs) > 1 for vs in seen.values()) < 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
        return {name: float(v) for name, v in result.items()}
    except Exception as e:  # noqa: BLE001 - importances are a nicety; the summary still answers
        log.warning("importances not computed: %s: %s", type(e).__name__, e)
        return None


# ---------------------------------------------------------------------------- requests


# Each op's args are checked against the contract's schema (check_args) before it runs.


def _op_ping(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    return {}


def _op_create(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    return studies.create(a["study"], parse_config(a))


def _op_ask(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    return studies.ask(a["study"])


def _number(value: int | float | None) -> float:
    """A metric: null is JSON's NaN (Python's json also reads NaN and Infinity, kept as they are)."""
    return math.nan if value is None else float(value)


def _op_report(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    return studies.report(a["study"], a["number"], a["step"], _number(a["value"]))


def _op_tell(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    value = _number(a["value"]) if "value" in a else None
    return studies.tell(a["study"], a["number"], a["state"], value)


def _op_summary(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    return studies.summary(a["study"], a.get("importances", False))


def _op_fail_running(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    return studies.fail_running(a["study"], a["keep"])


def _op_delete(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    return studies.delete(a["study"])


OPS: dict[str, Any] = {
    "ping": _op_ping,
    "create": _op_create,
    "ask": _op_ask,
    "report": _op_report,
    "tell": _op_tell,
    "summary": _op_summary,
    "fail_running": _op_fail_running,
    "delete": _op_delete,
}
assert OPS.keys() == protocol.ARGS.keys(), "ops differ from contracts/study-protocol.json"
# Codes that say the request was wrong, not that the cached study may be damaged.
CLIENT_CODES = ("bad_request", "not_found", "conflict")


def error(request_id: int | None, code: str, message: str) -> dict[str, Any]:
    assert code in protocol.CODES, f"error code {code!r} is not in contracts/study-protocol.json"
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


def handle(studies: Studies, line: str) -> dict[str, Any]:
    """One request line in, its reply object out. Never raises (but for KeyboardInterrupt & co.)."""
    try:
        request = json.loads(line)
    except ValueError as e:
        return error(None, "bad_request", f"malformed JSON: {e}")
    if not isinstance(request, dict):
        return error(None, "bad_request", "a request is a JSON object")
    request_id = request.get("id")
    if type(request_id) is not int:
        return error(None, "bad_request", "id must be an integer")
    op = request.get("op")
    run = OPS.get(op) if isinstance(op, str) else None
    if run is None:
        return error(request_id, "bad_request", f"unknown op {op!r}"[:200])
    args = {k: v for k, v in request.items() if k not in ("id", "op")}
    key = args.get("study") if isinstance(args.get("study"), str) else None
    try:
        check_args(op, args)
        result = run(studies, args)
        missing = protocol.RESULT_KEYS[op] - result.keys()
        if missing:  # a reply outside the contract is not sent as a success
            raise StudyError("internal", f"{op}: the result lacks {', '.join(sorted(missing))}")
        return {"id": request_id, "ok": True, "result": result}
    except StudyError as e:
        if e.code not in CLIENT_CODES and key is not None:
            studies.forget(key)
        return error(request_id, e.code, e.message)
    except redis.exceptions.RedisError as e:
        # Unreachable, timed out, refused the credentials: worth a retry. The replay may have
        # stopped halfway, so the study is loaded afresh next time.
        if key is not None:
            studies.forget(key)
        log.warning("%s %s: redis: %s: %s", op, key, type(e).__name__, e)
        return error(request_id, "unavailable", f"redis: {type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 - the loop goes on; the traceback goes to stderr
        if key is not None:
            studies.forget(key)
        log.exception("%s %s failed", op, key)
        return error(request_id, "internal", f"{type(e).__name__}: {e}")
