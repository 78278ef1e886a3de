"""Reading YAML into pydantic models, with errors a person can act on.

Every failure — an unreadable file, text that is not YAML, a document that is not a mapping, a
wrong type, an unknown key, a bad unit — becomes one :class:`~hetsim.errors.InputError` naming the
file, the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from hetsim.errors import InputError

__all__ = ["read_yaml", "load_yaml_model", "validate_model", "apply_overrides", "parse_override"]

M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (YAML would silently keep the last one)."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    # merge keys (`<<: *base`, pool templates) are YAML's own way to repeat keys: a key of this
    # mapping overrides a merged one, and only two keys written here are a duplicate
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged = len(node.value) - own
    mapping: dict[Any, Any] = {}
    written: set[Any] = set()
    for n, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"a key must be a plain value, not a {type(key).__name__}",
                key_node.start_mark,
            ) from None
        if n >= merged:
            if key in written:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            written.add(key)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def read_yaml(path: str | Path, what: str = "file") -> dict[str, Any]:
    """The mapping at the top of a YAML file, or an InputError saying why there is none."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found", file=path)
    if path.is_dir():
        raise InputError(f"{what} is a directory, expected a YAML file", file=path)
    try:
        # utf-8-sig: a byte-order mark, as some Windows editors write, is not part of the text
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8 text (is it a binary file?)", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", file=path) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise InputError(f"not valid YAML: {problem}", file=path, line=line) from None
    except yaml.reader.ReaderError as exc:  # a control character such as NUL
        line = text.count("\n", 0, exc.position) + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise InputError(
            f"not valid YAML: unacceptable character {char} ({exc.reason})", file=path, line=line
        ) from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise InputError(f"not valid YAML: {problem}", file=path) from None
    except RecursionError:
        raise InputError("not valid YAML: nested too deeply", file=path) from None
    if data is None:
        raise InputError(f"{what} is empty", file=path)
    if not isinstance(data, dict):
        raise InputError(
            f"the top level of a {what} must be a mapping of keys to values, "
            f"not a {type(data).__name__}",
            file=path,
        )
    return data


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(item, str) and item.startswith(("function-", "tagged-union", "json-or")):
            continue  # pydantic's internal validator names are noise to a user
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names accepted at the parent of ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(item)
        if field is None:
            # a dict key (e.g. a name in a mapping of pools): stay on the value type
            continue
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside Optional[...], list[...], dict[str, ...] or Annotated[...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def validation_error_to_input_error(
    exc: ValidationError, model: type[BaseModel], file: str | Path | None
) -> InputError:
    """Every problem of a ValidationError, each with its field path, bad value and what is allowed.

    One problem is one line; several are numbered under "N problems:", as
    :func:`hetsim.checks.scenario.check_scenario` lists its own, so a user fixes them in one pass.
    """
    errors = exc.errors(include_url=False)
    # unknown keys first: a misspelt key also shows up as the missing field it was meant to be,
    # and "unknown key 'slas' (did you mean 'sla'?)" is the message that says how to fix both
    errors.sort(key=lambda e: e.get("type") != "extra_forbidden")
    meant: set[tuple[Any, ...]] = set()
    problems: list[InputError] = []
    for error in _merge_union_branches(errors, model):
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "missing" and loc in meant:
            continue  # the misspelt key's problem already names this field
        problem, close = _one_problem(error, model)
        if close is not None:
            meant.add((*loc[:-1], close))
        problems.append(problem)
    return InputError.all_of(problems, file)


def _merge_union_branches(errors: list[Any], model: type[BaseModel]) -> list[Any]:
    """A value that fits none of a union's types (``str | int``) fails once per type, each
    error located under the type's name: one problem, at the field, listing what each wanted."""
    out: list[Any] = []
    by_field: dict[tuple[Any, ...], Any] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        branch = loc[-1] if loc else None
        keys = _allowed_keys(model, loc) if isinstance(branch, str) else None
        # a leaf union (``str | Count``) has no model to name its keys: its branches are the
        # errors under a field whose annotation is a union
        if keys is None and isinstance(branch, str) and _is_union(model, loc[:-1]):
            keys = []
        if keys is None or branch in keys or error.get("type") in ("missing", "extra_forbidden"):
            out.append(error)
            continue
        first = by_field.get(loc[:-1])
        if first is None:
            first = by_field[loc[:-1]] = {**error, "loc": loc[:-1], "type": "union"}
            out.append(first)
        else:
            first["msg"] = f"{first['msg']}, or {_branch_message(error)}"
    return out


def _branch_message(error: Any) -> str:
    text = str(error.get("msg", "")).removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """The model field at ``loc`` (list indices skipped), if the path names one."""
    current: Any = model
    field: FieldInfo | None = None
    for item in loc:
        if isinstance(item, int):
            continue
        inner = _inner_model(current) if field is not None else current
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return None
        field = inner.model_fields.get(item)
        if field is None:
            return None
        current = field.annotation
    return field


def _is_union(model: type[BaseModel], loc: tuple[Any, ...]) -> bool:
    """Whether the field at ``loc`` is annotated with a union of two or more types besides
    None."""
    field = _field_at(model, loc)
    annotation = field.annotation if field is not None else None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return (
        annotation is not None
        and typing.get_origin(annotation) in (typing.Union, UnionType)
        and len(args) >= 2
    )


#: pydantic's range errors and how their bound reads as an allowed range
_BOUNDS = {"greater_than": ("gt", "> {}"), "greater_than_equal": ("ge", ">= {}"),
           "less_than": ("lt", "< {}"), "less_than_equal": ("le", "<= {}")}  # fmt: skip


#: pydantic's "not a number" errors: the message says what was wrong, not what would do
_NUMBER_TYPES = ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float")


def _number_range(field_info: FieldInfo | None, whole: bool) -> str:
    """What a numeric field takes, from its bounds: 'a number >= 0 and <= 1'."""
    bounds = []
    for item in field_info.metadata if field_info is not None else []:
        for key, form in (("gt", "> {}"), ("ge", ">= {}"), ("lt", "< {}"), ("le", "<= {}")):
            if getattr(item, key, None) is not None:
                bounds.append(form.format(getattr(item, key)))
    kind = "a whole number" if whole else "a number (no unit or % sign)"
    return " and ".join([f"{kind} {bounds[0]}", *bounds[1:]]) if bounds else kind


def _one_problem(error: Any, model: type[BaseModel]) -> tuple[InputError, str | None]:
    """One pydantic error as an InputError (without a file), and the key an unknown key was
    probably meant to be."""
    loc = tuple(error.get("loc", ()))
    field = _loc_to_path(loc) or None
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    allowed: str | None = None
    close: str | None = None
    value: Any = error.get("input")
    if kind == "extra_forbidden":
        keys = _allowed_keys(model, loc) or []
        unknown = str(loc[-1]) if loc else "?"
        matches = difflib.get_close_matches(unknown, keys, n=1)
        close = matches[0] if matches else None
        message = "unknown key" + (f" (did you mean {close!r}?)" if close else "")
        allowed = ", ".join(keys) if keys else None
        value = unknown
    elif kind == "missing":
        message = "required field is missing"
        value = None
        # what the field holds is what is allowed: its description says it
        field_info = _field_at(model, loc)
        allowed = field_info.description if field_info is not None else None
    elif kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected")
        if expected:
            allowed = str(expected)
            message = "not one of the allowed values"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "expected a mapping of keys to values"
    elif kind in _BOUNDS:
        key, form = _BOUNDS[kind]
        bound = (error.get("ctx") or {}).get(key)
        if bound is not None:
            allowed = form.format(bound)
    elif kind in _NUMBER_TYPES:
        allowed = _number_range(_field_at(model, loc), whole=kind.startswith("int"))
    kwargs: dict[str, Any] = {"field": field, "allowed": allowed}
    if kind != "missing" and loc:
        # (an error about the whole document would print the whole document)
        kwargs["value"] = _short(value)
    return InputError(message, **kwargs), close


def _short(value: Any) -> Any:
    if isinstance(value, dict | list):
        try:
            text = json.dumps(value, default=str)
        except (ValueError, RecursionError):  # a YAML alias that contains itself
            return "<a structure that contains itself>"
        return text if len(text) <= 80 else text[:77] + "..."
    return value


def validate_model(model: type[M], data: Any, file: str | Path | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error_to_input_error(exc, model, file) from None


def load_yaml_model(model: type[M], path: str | Path, what: str = "file") -> M:
    return validate_model(model, read_yaml(path, what), path)


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``pools[0].tp=8`` or ``sla.ttft=2 s`` → (path parts, YAML-typed value)."""
    if "=" not in text:
        raise InputError(
            "an override must look like dotted.path=value",
            field="--set",
            value=text,
            allowed="e.g. --set pools.decode.instances=4 --set sla.ttft='2 s'",
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise InputError("an override needs a field path before '='", field="--set", value=text)
    parts: list[str | int] = []
    for piece in key.split("."):
        while "[" in piece:
            head, _, rest = piece.partition("[")
            index, _, piece = rest.partition("]")
            if head:
                parts.append(head)
            if not index.isdigit():
                raise InputError("list index must be a number", field="--set", value=text)
            parts.append(int(index))
        if piece:
            parts.append(int(piece) if piece.isdigit() else piece)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to raw scenario data before validation.

    A path segment may index a list by position (``pools.1.tp``) or, for lists of named items, by
    name (``pools.decode.tp``), the way people refer to pools.
    """
    for text in overrides:
        parts, value = parse_override(text)
        target: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            shown = ".".join(str(p) for p in parts[: depth + 1])
            if isinstance(target, list):
                index = _list_index(target, part, shown, text)
                if last:
                    target[index] = value
                else:
                    target = target[index]
            elif isinstance(target, dict):
                if last:
                    target[part] = value
                else:
                    if part not in target or target[part] is None:
                        target[part] = {}
                    target = target[part]
            else:
                raise InputError(
                    f"cannot set a field inside {type(target).__name__} value at {shown!r}",
                    field="--set",
                    value=text,
                )
    return data


def _list_index(target: list[Any], part: str | int, shown: str, text: str) -> int:
    if isinstance(part, int):
        if part >= len(target):
            raise InputError(
                f"index {part} is out of range (the list has {len(target)} items)",
                field="--set",
                value=text,
            )
        return part
    names = [item.get("name") for item in target if isinstance(item, dict)]
    if part in names:
        return names.index(part)
    raise InputError(
        f"no item named {part!r} at {shown!r}",
        field="--set",
        value=text,
        allowed=", ".join(str(n) for n in names if n is not None) or None,
    )
