"""Settings fields that describe themselves: each field of a settings dataclass carries its help and
its choices, so the command line's flags and the app's forms are made from the dataclass, the one
place that holds its default.

    temperature: float = option(0.8, "sampling temperature")
    strategy: str = option("drop", "the negative's context", choices=STRATEGIES)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence


def option(default: Any, help: str, *, choices: Optional[Sequence] = None, labels: Optional[dict] = None,
           flag: Optional[str] = None, kind: Optional[type] = None, low: Optional[float] = None,
           above: Optional[float] = None, high: Optional[float] = None, below: Optional[float] = None):
    """A dataclass field with its `help`, allowed `choices` (with readable `labels` for forms), the
    command-line `flag` when not `--field-name`, its `kind` when the default is None, and for a
    number its bounds: at least `low`, more than `above`, at most `high`, less than `below`."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": tuple(choices) if choices is not None else None, "labels": labels or {},
        "flag": flag, "kind": kind, "low": low, "above": above, "high": high,
        "below": below})


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def described(cls) -> dict[str, dataclasses.Field]:
    """The fields of a settings dataclass that carry a description, by name."""
    return {f.name: f for f in dataclasses.fields(cls) if "help" in f.metadata}


def help_of(cls, name: str) -> str:
    return described(cls)[name].metadata["help"]


def choices_of(cls, name: str) -> tuple:
    """(value, label) for each allowed value of a field, for a form's select."""
    meta = described(cls)[name].metadata
    return tuple((meta["labels"].get(v, str(v)), v) for v in meta["choices"] or ())


def kind_of(field: dataclasses.Field) -> type:
    kind = field.metadata.get("kind")
    if kind is not None:
        return kind
    return type(field.default) if field.default is not None else str


def check_choices(settings) -> None:
    """A clear one-line error when a field holds a value outside its choices or its bounds, or a
    number that is not finite (nan, inf)."""
    import math

    from .errors import MipoError

    for name, field in described(type(settings)).items():
        meta = field.metadata
        allowed = meta["choices"]
        value = getattr(settings, name)
        if allowed and value is not None and value not in allowed:
            raise MipoError(f"unknown {name.replace('_', ' ')} {value!r}; choose one of {', '.join(map(str, allowed))}")
        flag = flag_of(field)
        if isinstance(value, str) and not value.strip():
            raise MipoError(f"{flag} was given nothing; give a value or leave it out"
                            + (f" (default: {field.default})" if field.default is not None else ""))
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if not math.isfinite(value):
            raise MipoError(f"{flag} {value} is not a number; give a finite value (default: {field.default})")
        bounds = [(meta.get("low"), "at least", lambda v, b: v >= b), (meta.get("above"), "more than", lambda v, b: v > b),
                  (meta.get("high"), "at most", lambda v, b: v <= b), (meta.get("below"), "less than", lambda v, b: v < b)]
        if not all(ok(value, b) for b, _, ok in bounds if b is not None):
            wanted = " and ".join(f"{words} {b:g}" for b, words, _ in bounds if b is not None)
            raise MipoError(f"{flag} {value:g} is out of range; it must be {wanted} (default: {field.default})")
