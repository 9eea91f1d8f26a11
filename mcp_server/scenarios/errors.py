"""Errors of a scenario file that cannot be read: the file, the path in it, its line, what is wrong and the fix."""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from togai_engine.common.messages import json_kind

Path_ = Sequence[str | int]


def dotted(path: Path_) -> str:
    """steps[2].do[0].update_account: the path as the docs and the messages write it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def labels(path: Path_) -> tuple[str, ...]:
    """("steps", 3, "expect") -> ("steps[3]", "expect"): the parts a difference's path shows, joined by ›."""
    found: list[str] = []
    for part in path:
        if isinstance(part, int) and found:
            found[-1] += f"[{part}]"
        else:
            found.append(str(part))
    return tuple(found)


class ScenarioFileError(Exception):
    """A scenario file that cannot be read (the run exits 2)."""

    def __init__(self, file: Path, path: Path_, message: str, line: int | None = None, *,
                 also: Sequence[str] = ()) -> None:
        self.file, self.path, self.line, self.message = file, tuple(path), line, message
        where = f"{file}" + (f", line {line}" if line else "")
        text = f"{where}: {dotted(path) + ': ' if path else ''}{message}"
        super().__init__("\n".join([text, *(f"  and {more}" for more in also)]))


def closest(name: str, choices: Sequence[str]) -> str:
    """' (did you mean x or y?)' when some choices are close to `name`, else ''."""
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(near)}?)" if near else ""


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    if get_origin(annotation) is not None and get_origin(annotation).__name__ == "Annotated":
        return _members(get_args(annotation)[0])
    return [annotation]


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model whose fields are at `loc` under `root` (through lists and dicts), if there is one."""
    candidates: list[Any] = [root]
    for part in loc:
        following: list[Any] = []
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel) and isinstance(part, str):
                field = candidate.model_fields.get(part)
                if field is not None:
                    following += _members(field.annotation)
            elif get_origin(candidate) is list and isinstance(part, int):
                following += _members(get_args(candidate)[0])
            elif get_origin(candidate) is dict and isinstance(part, str):
                following += _members(get_args(candidate)[1])
        candidates = following
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if models else None


def _message(root: type[BaseModel], error: Any) -> str:
    loc, kind = error["loc"], error["type"]
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        keys = list(model.model_fields) if model else []
        return (f"unknown key{closest(str(loc[-1]), keys)}; the keys here are: {', '.join(keys)}" if keys
                else "unknown key; remove it")
    if kind == "missing":
        return "is required here; add it"
    if kind == "string_type":
        return f"should be text; got {json_kind(error.get('input'))}: quote it"
    if kind in ("list_type", "dict_type", "model_type"):
        wanted = "a list (- item per line)" if kind == "list_type" else "a mapping (key: value)"
        return f"should be {wanted}; got {json_kind(error.get('input'))}"
    if kind == "bool_type" or kind == "bool_parsing":
        return "should be true or false"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message else kind


def _in_file(error: Any, data: Any) -> list[str | int]:
    """The parts of a validation error's location that are keys and indexes of the file's data, and the name of
    a missing key: pydantic also names the member of a union a value failed (`function-before[_as_written(),
    str]`), which the file does not have."""
    loc = error["loc"]
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if ((isinstance(node, dict) and part in node)
                or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))):
            node = node[part]
        elif not (error["type"] == "missing" and i == len(loc) - 1):
            continue
        if isinstance(part, str | int):
            path.append(part)
    return path


def from_validation(file: Path, root: type[BaseModel], exc: ValidationError,
                    line_of: Any, data: Any = None) -> ScenarioFileError:
    """Every field at fault (at most five), the first one leading. With `data` (what the file holds), a path
    names only the keys and indexes the file has."""
    found = []
    for error in exc.errors(include_url=False)[:5]:
        loc = error["loc"]
        path = _in_file(error, data) if data is not None else [part for part in loc if isinstance(part, str | int)]
        found.append((path, _message(root, error)))
    also = [f"line {line_of(path)}: {dotted(path)}: {message}" for path, message in found[1:]]
    return ScenarioFileError(file, found[0][0], found[0][1], line_of(found[0][0]), also=also)
