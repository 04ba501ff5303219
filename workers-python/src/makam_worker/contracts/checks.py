"""The checks behind the generated Hyperparameters dataclass, driven by its SPECS table.

Hand-written, but it holds no bound of its own: every number comes from contracts/hyperparameters.json
through the generated module, so the worker refuses exactly what the API refuses. A leaf module: it
imports nothing of makam_worker.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping


def coerce_all(
    values: Mapping[str, Any], family: str, specs: Mapping[str, dict[str, Any]], families: tuple[str, ...],
    label_weights: Mapping[str, Any],
) -> dict[str, Any]:
    """JSON values for one family as the dataclass's types; refuses unknown and misapplied keys."""
    if family not in families:
        raise ValueError(f"unknown model family {family!r}; use one of {', '.join(families)}")
    for name in sorted(values):
        if name not in specs:
            usable = sorted(n for n, s in specs.items() if family in s["families"])
            raise ValueError(f"unknown hyperparameter {name!r}; remove it or use one of: {', '.join(usable)}")
        owners = specs[name]["families"]
        if family not in owners:
            raise ValueError(
                f"hyperparameter {name!r} applies to the {_names(owners)} {'family' if len(owners) == 1 else 'families'}"
                f", not {family}; remove it"
            )
    return {name: _coerce(name, specs[name], value, label_weights) for name, value in values.items()}


def check(hp: Any, specs: Mapping[str, dict[str, Any]], families: tuple[str, ...], fractions_sum_max: float,
          label_weights: Mapping[str, Any]) -> None:
    """Fills the per-family defaults, then checks every value against its spec and the rules between keys."""
    family = hp.family
    if family not in families:
        raise ValueError(f"unknown model family {family!r}; use one of {', '.join(families)}")
    for name, spec in specs.items():
        if getattr(hp, name) is None and family in spec.get("defaults", {}):
            object.__setattr__(hp, name, spec["defaults"][family])
    for name, spec in specs.items():
        value = getattr(hp, name)
        if value is None and (spec.get("nullable") or "defaults" in spec):
            continue  # a per-family default of a family the key does not apply to
        _check_value(name, spec, value, label_weights)
    _check_rules(hp, family, fractions_sum_max)


def values_of(hp: Any, specs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: _copy(getattr(hp, name)) for name, spec in specs.items() if hp.family in spec["families"]}


def label_weights(value: Any, name: str, label_names: list[str]) -> dict[str, float] | None:
    if not isinstance(value, dict):
        return None
    unknown = sorted(set(value) - set(label_names))
    if unknown:
        raise ValueError(
            f"{name} names label(s) not in the training data: {', '.join(map(repr, unknown[:5]))}; "
            f"the labels are {', '.join(map(repr, label_names))}"
        )
    return dict(value)


def _check_rules(hp: Any, family: str, fractions_sum_max: float) -> None:
    # The same rules as the API's check-hyperparameters.ts; docs/hyperparameters.md lists them.
    if hp.validation_fraction + hp.test_fraction > fractions_sum_max:
        raise ValueError(
            f"validation_fraction + test_fraction is {hp.validation_fraction + hp.test_fraction}; "
            f"keep it at most {fractions_sum_max} so training keeps most of the data"
        )
    if family == "scratch" and hp.d_model % hp.heads:
        raise ValueError(f"d_model ({hp.d_model}) must divide by heads ({hp.heads}); try d_model {hp.heads * 64}")
    if family == "tfidf" and hp.char_ngram_min > hp.char_ngram_max:
        raise ValueError(f"char_ngram_min ({hp.char_ngram_min}) must not exceed char_ngram_max ({hp.char_ngram_max})")
    if hp.loss != "focal" and hp.focal_alpha is not None:
        raise ValueError("focal_alpha weights the focal loss; set loss to 'focal' or drop focal_alpha")
    if family == "decoder" and hp.load_in_4bit and hp.export == "merged":
        raise ValueError("a 4-bit base cannot be merged with its adapter; use export 'adapter' or load_in_4bit false")


def _check_value(name: str, spec: Mapping[str, Any], value: Any, lw: Mapping[str, Any]) -> None:
    kind = spec["type"]
    if kind in ("integer", "number"):
        if value is None and spec.get("nullable"):
            return
        _check_bounds(name, spec, value)
    elif kind == "enum" and value not in spec["choices"]:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, spec['choices']))} (got {value!r})")
    elif kind == "string_list":
        if not spec["minItems"] <= len(value) <= spec["maxItems"]:
            raise ValueError(
                f'{name} must name {spec["minItems"]} to {spec["maxItems"]} modules, such as ["q_proj", "v_proj"] (got {len(value)})'
            )
        for item in value:
            if not _matches(spec["pattern"], item):
                raise ValueError(f"{name} items must match {spec['pattern']} (got {item!r})")
    elif kind in ("label_weights", "class_weights") and isinstance(value, dict):
        for label, weight in value.items():
            if not lw["minimum"] <= weight <= lw["maximum"]:
                raise ValueError(f"{name}[{label!r}] must be from {lw['minimum']} to {lw['maximum']} (got {weight})")
        if not any(value.values()):
            raise ValueError(f"{name} gives every label weight 0; give at least one a weight above 0")


def _check_bounds(name: str, spec: Mapping[str, Any], value: float) -> None:
    low, high = spec.get("minimum"), spec.get("maximum")
    xlow, xhigh = spec.get("exclusiveMinimum"), spec.get("exclusiveMaximum")
    if (low is not None and value < low) or (xlow is not None and value <= xlow) or (
            high is not None and value > high) or (xhigh is not None and value >= xhigh):
        lower = f"above {xlow}" if xlow is not None else f"from {low}"
        upper = f"below {xhigh}" if xhigh is not None else f"to {high}" if xlow is None else f"at most {high}"
        raise ValueError(f"{name} must be {lower} {'and ' if xlow is not None else ''}{upper} (got {value})")


def _matches(pattern: str, text: str) -> bool:
    # JSON Schema's '$' ends the string; Python's also matches before a final newline, so use \Z.
    return re.search(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern, text) is not None


def _names(families: tuple[str, ...]) -> str:
    return families[0] if len(families) == 1 else ", ".join(families[:-1]) + " and " + families[-1]


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


def _coerce(name: str, spec: Mapping[str, Any], value: Any, lw: Mapping[str, Any]) -> Any:
    kind = spec["type"]
    if value is None and spec.get("nullable"):
        return None
    if kind in ("integer", "number"):
        return _number(name, int if kind == "integer" else float, value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false (got {type(value).__name__} {value!r})")
        return value
    if kind == "enum":
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string (got {type(value).__name__} {value!r})")
        return value
    if kind == "string_list":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f'{name} must be a list of module names, such as ["q_proj", "v_proj"] (got {value!r})')
        return list(value)
    if kind == "label_weights":
        return _label_weights(name, value, lw)
    if kind == "class_weights":
        if value == "balanced":
            return value
        if isinstance(value, str):
            raise ValueError(f'{name} must be null, "balanced" or {{label: weight}} (got {value!r})')
        return _label_weights(name, value, lw)
    raise AssertionError(f"no coercion for {name} of type {kind}")  # a contract type without a coercion is a bug here


def _label_weights(name: str, value: Any, lw: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(value, Mapping) or len(value) < lw["minProperties"]:
        raise ValueError(f'{name} must be an object of label names to weights, such as {{"pop": 2.0}} (got {value!r})')
    return {str(label): _number(f"{name}[{label!r}]", float, weight) for label, weight in value.items()}


def _number(name: str, type_: Any, value: Any) -> int | float:
    # bool is an int subclass in Python; true/false is never a meaningful number here.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number (got {type(value).__name__} {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number (got {value})")
    if type_ is int:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number (got {value}); round it, e.g. {int(value)}")
        return int(value)
    return float(value)


__all__ = ["check", "coerce_all", "label_weights", "values_of"]
