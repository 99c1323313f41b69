"""Turn pydantic validation errors into ``key: problem; fix: what to write`` lines.

Every error is reported, not only the first: pydantic collects them all, and each is
rewritten here with the dotted key (``proxy.routes[0].to[1]``), what is wrong with the
value, and a fix (a "did you mean" for misspelt keys and choices, the default as an
example for wrong types, the bound and its RFC for out-of-range numbers).
"""

from __future__ import annotations

import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticUndefined

from ._toml import toml_value
from .values import Invalid, describe, did_you_mean

M = TypeVar("M", bound=BaseModel)

_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string in double quotes",
    "tuple_type": "a list [...]",
    "list_type": "a list [...]",
    "dict_type": "a table",
    "mapping_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than", ">"),
    "greater_than_equal": ("ge", "is below the minimum", ">="),
    "less_than": ("lt", "must be less than", "<"),
    "less_than_equal": ("le", "is above the maximum", "<="),
}


class ConfigError(Exception):
    """The configuration is invalid. ``problems`` holds one ``key: problem; fix: ...`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def validate(model: type[M], data: Mapping[str, Any], overridden: Collection[str] = ()) -> M:
    """Validate ``data`` into ``model``; raise :class:`ConfigError` listing every problem.

    Keys in ``overridden`` (dotted, e.g. ``server.listen``) are marked ``(override)``.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([describe_error(model, e, overridden) for e in exc.errors()]) from None


def describe_error(root: type[BaseModel], err: ErrorDetails, overridden: Collection[str]) -> str:
    """One pydantic error as ``key: problem; fix: what to write``."""
    key, tp, field = _walk(root, err["loc"])
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, Invalid):  # raised by our own parsers and section checks
        problem, fix = error.problem, error.fix
        if error.key:
            key = f"{key}.{error.key}" if key else error.key
    else:
        problem, fix = _explain(root, err, key, tp, field)
    if any(key == o or key.startswith((f"{o}.", f"{o}[")) for o in overridden):
        key += " (override)"
    return f"{key or '(top level)'}: {problem}; fix: {fix}"


def _explain(
    root: type[BaseModel], err: ErrorDetails, key: str, tp: object, field: FieldInfo | None
) -> tuple[str, str]:
    """(problem, fix) for one of pydantic's own error types."""
    kind, value, loc = err["type"], err["input"], err["loc"]
    if kind == "extra_forbidden":
        return _unknown_key(root, loc, value)
    if kind == "missing":
        examples = field.examples if field is not None else None
        example = f" = {toml_value(examples[0])}" if examples else ""
        return "required key is missing", f"add {_last_name(loc)}{example}"
    if kind in _EXPECTED:
        return _wrong_type(kind, value, key, tp, field, loc)
    if kind in _BOUNDS:
        return _out_of_range(kind, value, dict(err.get("ctx") or {}), field)
    if kind == "literal_error" and field is not None:
        return _not_a_choice(value, typing.get_args(field.annotation))
    if kind == "finite_number":
        return f"{value} is not a finite number", "write a finite number"
    if kind in ("string_too_short", "too_short"):
        return "is empty", "give a value"
    return err["msg"], "see docs/config.md"


def _walk(root: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, object, FieldInfo | None]:
    """The dotted key of ``loc``, the declared type found there, and the last field crossed."""
    key, tp, field = "", typing.cast(object, root), None
    for part in loc:
        if part == "[key]":  # the error is about a table key itself
            continue
        model = _model(tp)
        if isinstance(part, int):
            key, tp = f"{key}[{part}]", _arg(tp, 0)
        elif model is not None:
            key = f"{key}.{part}" if key else part
            field = model.model_fields.get(part)
            tp = field.annotation if field is not None else None
        else:
            key, tp = f'{key}["{part}"]', _arg(tp, -1)
    return key, tp, field


def _model(tp: object) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    return None


def _arg(tp: object, index: int) -> object:
    """Item type of ``tuple[X, ...]`` (index 0) or value type of ``Mapping[K, V]`` (-1)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Annotated:
        return _arg(args[0], index)
    return args[index] if args else None


def _last_name(loc: Sequence[int | str]) -> str:
    names = [p for p in loc if isinstance(p, str) and p != "[key]"]
    return names[-1] if names else ""


def _unknown_key(root: type[BaseModel], loc: Sequence[int | str], value: object) -> tuple[str, str]:
    name = str(loc[-1])
    _, parent, _ = _walk(root, loc[:-1])
    model = _model(parent)
    known = list(model.model_fields) if model is not None else []
    what = "unknown section" if len(loc) == 1 and isinstance(value, Mapping) else "unknown key"
    guess = did_you_mean(name, known)
    if guess:
        return what, f'did you mean "{guess}"?'
    if model is root:
        homes = [
            s for s in known if name in getattr(_model(_field_type(root, s)), "model_fields", {})
        ]
        if homes:
            return what, f"move it into the [{homes[0]}] section"
    return what, f"remove it (known keys: {', '.join(known)})"


def _field_type(model: type[BaseModel], name: str) -> object:
    return model.model_fields[name].annotation


def _wrong_type(
    kind: str,
    value: object,
    key: str,
    tp: object,
    field: FieldInfo | None,
    loc: Sequence[int | str],
) -> tuple[str, str]:
    expected = _EXPECTED[kind]
    problem = f"expected {expected}, got {describe(value)}"
    if _model(tp) is not None:
        return problem, f"write it as a [{key}] table"
    if _model(_arg(tp, 0)) is not None and kind in ("tuple_type", "list_type"):
        return problem, f"write each entry as a [[{key}]] table"
    if isinstance(loc[-1], str) and field is not None and field.default is not PydanticUndefined:
        return problem, f"write {expected}, e.g. {loc[-1]} = {toml_value(field.default)}"
    return problem, f"write {expected}"


def _out_of_range(
    kind: str, value: object, ctx: dict[str, Any], field: FieldInfo | None
) -> tuple[str, str]:
    bound_key, words, op = _BOUNDS[kind]
    bound = _number(ctx[bound_key])
    extra = field.json_schema_extra if field is not None else None
    why = f" ({extra['why']})" if isinstance(extra, dict) and "why" in extra else ""
    return f"{_number(value)} {words} {bound}", f"write a value {op} {bound}{why}"


def _not_a_choice(value: object, choices: tuple[Any, ...]) -> tuple[str, str]:
    quoted = ", ".join(f'"{c}"' for c in choices)
    if not isinstance(value, str):
        return f"expected one of {quoted}, got {describe(value)}", f"write one of {quoted}"
    guess = did_you_mean(value.lower(), [str(c) for c in choices])
    fix = f'write "{guess}"' if guess else f"write one of {quoted}"
    return f'"{value}" is not one of {quoted}', fix


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
