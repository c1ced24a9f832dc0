"""Check a JSON body against a request model and say what is wrong the way the API always has: an unknown or
missing field is the request's fault (400), a bad value is an invalid field (422, naming it)."""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError


@dataclass
class Problem(Exception):
    message: str
    field: str | None = None
    malformed: bool = False  # True: unknown or missing fields (400); False: a bad value (422)


def _nullable(model: type[BaseModel], name: str) -> bool:
    ann = model.model_fields[name].annotation
    return typing.get_origin(ann) in (typing.Union, types.UnionType) and type(None) in typing.get_args(ann)


def parse(model: type[BaseModel], data, then=None) -> dict:
    """data (a decoded JSON body) checked against model; answers the fields as given. Raises Problem. then(data),
    if given, is called between the shape's check (fields known, required ones there) and the values'."""
    if not isinstance(data, dict):
        raise Problem("the request body must be a JSON object", malformed=True)
    fields = model.model_fields
    if unknown := sorted(set(data) - set(fields)):
        raise Problem(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}",
                      malformed=True)
    missing = sorted(k for k, f in fields.items() if f.is_required()
                     and (k not in data or (data[k] in (None, "") and not _nullable(model, k))))
    if missing:
        raise Problem(getattr(model, "MISSING", "") or f"missing field(s): {', '.join(missing)}", malformed=True)
    if then is not None:
        then(data)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else None
        raise Problem(message(model, field, err), field) from None
    return dict(data)


def message(model: type[BaseModel], field: str | None, err: dict) -> str:
    """Today's wording for one pydantic error: a field's own sentence (the model's MESSAGES) or the general one."""
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    own = getattr(model, "MESSAGES", {}).get(field)
    if own:
        return own
    kind = err["type"]
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{field} must be an integer"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"{field} must be a number"
    if kind == "bool_type":
        return f"{field} must be true or false"
    if kind in ("greater_than_equal", "less_than_equal"):
        info = model.model_fields[field]
        lo = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
        hi = next((m.le for m in info.metadata if hasattr(m, "le")), None)
        return f"{field} must be between {lo} and {hi}"
    return f"{field}: {err['msg']}"
