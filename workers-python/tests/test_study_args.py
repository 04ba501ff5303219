"""Every request's args are checked against contracts/study-protocol.json's own schema: the bad
requests here are generated from that schema (each op's example args, then one arg missing,
wrong-typed or unknown at every level, the space's entries included), and each must be answered
bad_request with a message naming the field by its path. No Redis: a refused request never
reaches the storage."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from makam_study import study as st  # first: it lets redis import on Pythons below 3.11.3
from makam_study import protocol

CONTRACT = json.loads((Path(__file__).resolve().parents[2] / "contracts" / "study-protocol.json").read_text())
DEFS = CONTRACT["$defs"]
# One value of each JSON type (1.0 is a number but not an integer, as the ops want it).
SAMPLES: list[tuple[str, Any]] = [
    ("boolean", True), ("string", "x"), ("integer", 7), ("number", 1.0), ("number", 1.5),
    ("null", None), ("array", []), ("object", {}),
]


def resolve(s: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in s:
        s = DEFS[s["$ref"].removeprefix("#/$defs/")]
    return s


def json_type(v: Any) -> str:
    names = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return names[type(v)]


def types_of(s: dict[str, Any]) -> set[str]:
    """The JSON types a schema takes (integer counted in number)."""
    s = resolve(s)
    if "anyOf" in s:
        return set().union(*(types_of(b) for b in s["anyOf"]))
    if "const" in s:
        return {json_type(s["const"])}
    if "enum" in s:
        return {json_type(v) for v in s["enum"]}
    t = s["type"]
    out = {t} if isinstance(t, str) else set(t)
    return out | ({"integer"} if "number" in out else set())


def example(s: dict[str, Any]) -> Any:
    """A valid value: every property present; a map of schemas gets one entry per anyOf branch."""
    s = resolve(s)
    if "anyOf" in s:
        return example(s["anyOf"][0])
    if "const" in s:
        return s["const"]
    if "enum" in s:
        return s["enum"][0]
    t = s["type"] if isinstance(s["type"], str) else s["type"][0]
    if t == "object":
        if isinstance(s.get("additionalProperties"), dict):
            entry = resolve(s["additionalProperties"])
            return {f"p{i}": example(b) for i, b in enumerate(entry.get("anyOf", [entry]))}
        return {k: example(v) for k, v in s["properties"].items()}
    if t == "array":
        return [example(s["items"])]
    return {"string": "k", "integer": max(1, s.get("minimum", 1)), "number": 0.5, "boolean": True, "null": None}[t]


def dotted(path: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def put(args: dict[str, Any], path: list[Any], value: Any = ..., *, delete: bool = False) -> dict[str, Any]:
    args = json.loads(json.dumps(args))
    *parent, last = path
    target = args
    for p in parent:
        target = target[p]
    if delete:
        del target[last]
    else:
        target[last] = value
    return args


def bad_cases(s: dict[str, Any], value: Any, path: list[Any]) -> Iterator[tuple[str, list[Any], Any, str]]:
    """(what, path, replacement or ..., the message's expected start) for value under schema s."""
    s = resolve(s)
    if "anyOf" in s:  # the branch the example took: the one whose const it carries
        s = next(resolve(b) for b in s["anyOf"] if resolve(b)["properties"]["type"]["const"] == value["type"])
    if s.get("type") == "object" and "properties" in s:
        where = dotted(path)
        for k in s.get("required", []):
            yield ("missing", path + [k], ..., f"{where or '{op}'}: missing {k}")
        for k, sub in s["properties"].items():
            for t, wrong in SAMPLES:
                if t not in types_of(sub) and not (t == "integer" and "number" in types_of(sub)):
                    yield ("wrong-typed", path + [k], wrong, dotted(path + [k]) + " must")
            yield from bad_cases(sub, value[k], path + [k])
        yield ("unknown", path + ["not_in_contract"], 1, f"{where or '{op}'}: unknown not_in_contract")
    elif s.get("type") == "object":  # a map (the space): each entry
        for k, v in value.items():
            yield from bad_cases(s["additionalProperties"], v, path + [k])
    elif s.get("type") == "array":
        for t, wrong in SAMPLES:
            if t not in types_of(s["items"]) and not (t == "integer" and "number" in types_of(s["items"])):
                yield ("wrong-typed", path + [0], wrong, dotted(path + [0]) + " must")


def cases() -> Iterator[Any]:
    for op, spec in CONTRACT["ops"].items():
        args = example(spec["args"])
        for what, path, value, start in bad_cases(spec["args"], args, []):
            bad = put(args, path, delete=True) if value is ... else put(args, path, value)
            yield pytest.param(op, args, bad, start.replace("{op}", op), id=f"{op}-{what}-{dotted(path)}-{value!r}")


@pytest.fixture(scope="module")
def studies() -> Iterator[st.Studies]:
    s = st.Studies("redis://127.0.0.1:1")  # never reached: every request here is refused first
    yield s
    s.close()


def test_the_generated_schemas_are_the_contracts() -> None:
    assert protocol.DEFS == DEFS
    assert protocol.ARGS_SCHEMAS == {op: spec["args"] for op, spec in CONTRACT["ops"].items()}


@pytest.mark.parametrize(("op", "good", "bad", "start"), list(cases()))
def test_a_bad_arg_is_answered_bad_request_naming_it(studies: st.Studies, op: str, good: Any, bad: Any, start: str) -> None:
    st.check_args(op, good)  # the example the case was made from passes
    reply = st.handle(studies, json.dumps({"id": 1, "op": op, **bad}))
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
    assert reply["error"]["message"].startswith(start), reply


def test_every_op_and_every_space_type_has_cases() -> None:
    ids = [p.id for p in cases()]
    for op in CONTRACT["ops"]:
        assert any(i.startswith(f"{op}-unknown") for i in ids), op
        if CONTRACT["ops"][op]["args"]["required"]:
            assert any(i.startswith(f"{op}-missing") for i in ids), op
            assert any(i.startswith(f"{op}-wrong-typed") for i in ids), op
    for p in ("space.p0.low", "space.p1.step", "space.p2.choices[0]", "space.p2.not_in_contract", "pruner.type"):
        assert any(p in i for i in ids), p


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "hyper", "low": 1, "high": 2}, "space.x.type must be one of int, float, categorical"),
        ({"low": 1, "high": 2}, "space.x: missing type"),
        ({"type": "categorical", "choices": []}, "space.x.choices must not be empty"),
        ({"type": "int", "low": 1, "high": 2, "choices": [1]}, "space.x: unknown choices"),
        ({"type": "int", "low": 5, "high": 1}, "space.x: "),  # Optuna refuses it
        ({"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}, "space.x: "),
    ],
)
def test_a_malformed_space_is_refused(studies: st.Studies, spec: dict[str, Any], message: str) -> None:
    args = {**example(CONTRACT["ops"]["create"]["args"]), "space": {"x": spec}}
    reply = st.handle(studies, json.dumps({"id": 1, "op": "create", **args}))
    assert reply["error"]["code"] == "bad_request" and reply["error"]["message"].startswith(message), reply


@pytest.mark.parametrize("where", ["low", "step", "choices"])
def test_nan_and_infinity_refused_in_the_space(studies: st.Studies, where: str) -> None:
    """JSON has no NaN or Infinity, but Python's json reads them: the space must not hold one."""
    spec: dict[str, Any] = {"type": "float", "low": 0.0, "high": 1.0, "step": 0.5}
    if where == "choices":
        spec = {"type": "categorical", "choices": ["a", math.inf]}
    else:
        spec[where] = math.nan
    line = json.dumps({"id": 1, "op": "create", **example(CONTRACT["ops"]["create"]["args"]), "space": {"x": spec}})
    reply = st.handle(studies, line)
    path = "space.x.choices[1]" if where == "choices" else f"space.x.{where}"
    assert reply["error"] == {"code": "bad_request", "message": f"{path} must be finite"}


def test_tell_complete_needs_a_value(studies: st.Studies) -> None:
    reply = st.handle(studies, json.dumps({"id": 1, "op": "tell", "study": "k", "number": 0, "state": "complete"}))
    assert reply["error"] == {"code": "bad_request", "message": "tell: missing value"}
