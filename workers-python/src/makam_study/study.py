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
DIRECTIONS = protocol.ENUMS["direction"]
SAMPLERS = protocol.ENUMS["sampler"]
PRUNERS = protocol.ENUMS["pruner.type"]
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


def check_keys(obj: Mapping[str, Any], where: str, required: set[str], optional: set[str] = frozenset()) -> None:
    missing = sorted(required - obj.keys())
    if missing:
        raise bad_request(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(obj.keys() - required - optional)
    if unknown:
        raise bad_request(f"{where}: unknown {', '.join(unknown)}")


def as_int(value: Any, name: str, minimum: int | None = None) -> int:
    if type(value) is not int:
        raise bad_request(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise bad_request(f"{name} must be at least {minimum}")
    return value


def as_bool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise bad_request(f"{name} must be a boolean")
    return value


def as_number(value: Any, name: str, *, finite: bool = True) -> float:
    """A JSON number; with finite=False also null (JSON's stand-in for NaN) and Python's NaN/Infinity."""
    if value is None and not finite:
        return math.nan
    if type(value) not in (int, float):
        raise bad_request(f"{name} must be a number")
    value = float(value)
    if finite and not math.isfinite(value):
        raise bad_request(f"{name} must be finite")
    return value


def as_str(value: Any, name: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{name} must be a non-empty string")
    if choices is not None and value not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}")
    return value


# ---------------------------------------------------------------------------- space and config


def distributions(space: Any) -> dict[str, BaseDistribution]:
    """The space as Optuna distributions, in the space's order."""
    if not isinstance(space, dict) or not space:
        raise bad_request("space must be a non-empty object")
    out: dict[str, BaseDistribution] = {}
    for name, spec in space.items():
        where = f"space.{name}"
        if not isinstance(spec, dict):
            raise bad_request(f"{where} must be an object")
        kind = spec.get("type")
        try:
            if kind == "int":
                check_keys(spec, where, {"type", "low", "high"}, {"step", "log"})
                out[name] = IntDistribution(
                    as_int(spec["low"], f"{where}.low"),
                    as_int(spec["high"], f"{where}.high"),
                    log=as_bool(spec.get("log", False), f"{where}.log"),
                    step=as_int(spec.get("step", 1), f"{where}.step"),
                )
            elif kind == "float":
                check_keys(spec, where, {"type", "low", "high"}, {"step", "log"})
                step = spec.get("step")
                out[name] = FloatDistribution(
                    as_number(spec["low"], f"{where}.low"),
                    as_number(spec["high"], f"{where}.high"),
                    log=as_bool(spec.get("log", False), f"{where}.log"),
                    step=None if step is None else as_number(step, f"{where}.step"),
                )
            elif kind == "categorical":
                check_keys(spec, where, {"type", "choices"})
                choices = spec["choices"]
                if not isinstance(choices, list) or not choices:
                    raise bad_request(f"{where}.choices must be a non-empty list")
                for c in choices:
                    if not (c is None or isinstance(c, (str, bool, int)) or (isinstance(c, float) and math.isfinite(c))):
                        raise bad_request(f"{where}.choices must hold JSON scalars")
                out[name] = CategoricalDistribution(choices)
            else:
                raise bad_request(f"{where}.type must be int, float or categorical")
        except ValueError as e:  # Optuna refuses the distribution (low > high, log with step, ...)
            raise bad_request(f"{where}: {e}") from None
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
    """The create request's config, checked (Optuna builds the space once to refuse what it refuses)."""
    pruner = args["pruner"]
    if not isinstance(pruner, dict):
        raise bad_request("pruner must be an object")
    check_keys(pruner, "pruner", {"type"}, {"startup_trials", "warmup_epochs"})
    as_str(pruner["type"], "pruner.type", PRUNERS)
    for k in ("startup_trials", "warmup_epochs"):
        if k in pruner:
            as_int(pruner[k], f"pruner.{k}", 0)
    config = {
        "space": args["space"],
        "direction": as_str(args["direction"], "direction", DIRECTIONS),
        "sampler": as_str(args["sampler"], "sampler", SAMPLERS),
        "pruner": pruner,
        "seed": as_int(args["seed"], "seed"),
        "trials": as_int(args["trials"], "trials", 1),
    }
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


# The dispatcher's Redis TLS settings (PEM file paths), as redis-py's SSL connection takes them.
TLS_ENV = {
    "MAKAM_REDIS_TLS_CA": "ssl_ca_certs",
    "MAKAM_REDIS_TLS_CERT": "ssl_certfile",
    "MAKAM_REDIS_TLS_KEY": "ssl_keyfile",
}


def tls_options(url: str, env: Mapping[str, str]) -> dict[str, str]:
    """redis-py keyword arguments for the TLS files in `env`; none for a plaintext URL (which the
    dispatcher never pairs with TLS files: it refuses that configuration at start)."""
    if not url.lower().startswith("rediss://"):
        return {}
    return {arg: env[name] for name, arg in TLS_ENV.items() if env.get(name)}


class RedisJournal(JournalRedisBackend):
    """Optuna's Redis journal backend, with socket timeouts, logs read in batches (MGET), and a
    bounded wait for a missing log (upstream waits forever, which would hang every study this
    process serves when a study's keys are deleted under it)."""

    def __init__(self, url: str, prefix: str, tls: Mapping[str, str] | None = None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(url, prefix=prefix)
        self._redis.close()
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=10, socket_timeout=30, **(tls or {}))

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

    def __init__(self, url: str, cache_size: int = CACHE_SIZE, tls: Mapping[str, str] | None = None) -> None:
        self._url = url
        self._tls = dict(tls or {})
        self._cache: OrderedDict[str, optuna.Study] = OrderedDict()
        self._cache_size = cache_size
        # For operations that must not sample: its before_trial/after_trial do nothing (the grid
        # sampler's after_trial calls study.stop(), which raises outside optimize()).
        self._inert = optuna.samplers.RandomSampler(seed=0)

    # -- cache

    def _storage(self, key: str) -> JournalStorage:
        return JournalStorage(RedisJournal(self._url, key, self._tls))

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


def _study_key(args: Mapping[str, Any]) -> str:
    return as_str(args["study"], "study")


def _op_ping(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    check_keys(a, "ping", *protocol.ARGS["ping"])
    return {}


def _op_create(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    check_keys(a, "create", *protocol.ARGS["create"])
    return studies.create(_study_key(a), parse_config(a))


def _op_ask(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    check_keys(a, "ask", *protocol.ARGS["ask"])
    return studies.ask(_study_key(a))


def _op_report(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    check_keys(a, "report", *protocol.ARGS["report"])
    return studies.report(
        _study_key(a),
        as_int(a["number"], "number", 0),
        as_int(a["step"], "step", 0),
        as_number(a["value"], "value", finite=False),
    )


def _op_tell(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    check_keys(a, "tell", *protocol.ARGS["tell"])
    state = as_str(a["state"], "state", tuple(TELL_STATES))
    if state == "complete" and "value" not in a:
        raise bad_request("tell: a complete trial needs a value")
    value = as_number(a["value"], "value", finite=False) if "value" in a else None
    return studies.tell(_study_key(a), as_int(a["number"], "number", 0), state, value)


def _op_summary(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    check_keys(a, "summary", *protocol.ARGS["summary"])
    return studies.summary(_study_key(a), as_bool(a.get("importances", False), "importances"))


def _op_fail_running(studies: Studies, a: dict[str, Any]) -> dict[str, Any]:
    check_keys(a, "fail_running", *protocol.ARGS["fail_running"])
    keep = a["keep"]
    if not isinstance(keep, list):
        raise bad_request("keep must be a list of trial numbers")
    return studies.fail_running(_study_key(a), [as_int(n, "keep[]", 0) for n in keep])


OPS: dict[str, Any] = {
    "ping": _op_ping,
    "create": _op_create,
    "ask": _op_ask,
    "report": _op_report,
    "tell": _op_tell,
    "summary": _op_summary,
    "fail_running": _op_fail_running,
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
