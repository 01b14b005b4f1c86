"""Read a topology YAML file, remembering the line of every key, and type-check it.

Every problem becomes a `Problem` with file, line and a dotted path; all of them are
collected before `TopologyError` is raised, so one run shows everything to fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from toolkit.errors import Problem, TopologyError
from toolkit.topology.document import ROLES, TopologyDoc

Loc = tuple[str | int, ...]


class LineMap:
    """Lines of every key and item in a YAML document, addressed by path tuples."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Loc, int] = {}

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def problem(self, loc: Loc, message: str, severity: str = "error") -> Problem:
        """A Problem located at `loc`."""
        return Problem(self.file, self.line(loc), format_loc(loc), message, severity)


def format_loc(loc: Loc) -> str:
    """`("regions", 0, "hosts", 1, "address")` → `regions[0].hosts[1].address`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


MAX_NODES = 200_000


def _construct(
    node: yaml.Node, loc: Loc, lines: LineMap, problems: list[Problem], active: frozenset[int] = frozenset()
) -> Any:
    lines.lines.setdefault(loc, node.start_mark.line + 1)
    if len(lines.lines) > MAX_NODES:
        # Aliases can make a small file expand exponentially ("billion laughs").
        raise TopologyError(
            [
                Problem(
                    lines.file,
                    node.start_mark.line + 1,
                    format_loc(loc),
                    f"the document expands to more than {MAX_NODES} values (aliases?)",
                )
            ]
        )
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        # An alias of an enclosing anchor makes the node graph a cycle; without this
        # check the walk below recurses until RecursionError.
        if id(node) in active:
            raise TopologyError(
                [
                    Problem(
                        lines.file, node.start_mark.line + 1, format_loc(loc), "recursive alias: a node contains itself"
                    )
                ]
            )
        active = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, (*loc, "<key>"), lines, problems, active)
            if not isinstance(key, (str, int)):
                problems.append(
                    Problem(
                        lines.file,
                        key_node.start_mark.line + 1,
                        format_loc(loc),
                        f"a key must be text, not {type(key).__name__}",
                    )
                )
                continue
            if key in result:
                dup = Problem(
                    lines.file,
                    key_node.start_mark.line + 1,
                    format_loc((*loc, key)),
                    "duplicate key",
                )
                problems.append(dup)
                continue
            lines.lines[(*loc, key)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, (*loc, key), lines, problems, active)
        lines.lines.pop((*loc, "<key>"), None)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lines, problems, active) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _text(path: Path) -> str:
    """The file as text; unreadable or not UTF-8 is a TopologyError at the line where it goes wrong."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TopologyError([Problem(str(path), None, "", "no such file")]) from None
    except OSError as exc:
        raise TopologyError([Problem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        what = f"not UTF-8 text: byte 0x{data[exc.start]:02x} in column {column} (save the file as UTF-8)"
        raise TopologyError([Problem(str(path), line, "", what)]) from None


def read_yaml(path: Path) -> tuple[Any, LineMap]:
    """Parse `path` into plain Python data plus its line map; YAML errors become TopologyError."""
    lines = LineMap(str(path))
    text = _text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found before parsing
        at = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        what = f"character U+{code:04X} is not allowed in YAML (a control character)"
        raise TopologyError([Problem(str(path), at, "", what)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise TopologyError([Problem(str(path), line, "", f"invalid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise TopologyError([Problem(str(path), None, "", f"invalid YAML: {exc}")]) from None
    if node is None:
        raise TopologyError([Problem(str(path), 1, "", "the file is empty")])
    problems: list[Problem] = []
    try:
        data = _construct(node, (), lines, problems)
    except yaml.YAMLError as exc:
        raise TopologyError([Problem(str(path), None, "", f"invalid YAML: {exc}")]) from None
    if problems:
        raise TopologyError(problems)
    return data, lines


def _unwrap(annotation: Any) -> Any:
    """The model class inside `X | None`, `list[X]` or `Annotated[X, ...]`, else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _fields_at(loc: Loc) -> list[str]:
    """The keys allowed in the mapping at `loc` (for did-you-mean hints)."""
    model: Any = TopologyDoc
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _unwrap(field.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _network_message(value: object) -> str:
    """Why `value` is not an IPv4 network; names the network when only host bits are set."""
    try:
        network = ipaddress.IPv4Network(str(value), strict=False)
    except ValueError:
        return f"{value!r} is not a valid IPv4 network (write it as 10.0.1.0/24, or an address)"
    return f"{value!r} is not a valid IPv4 network: it has host bits set (the network is {network})"


def _message(error: Any) -> str:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _fields_at(loc[:-1]), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}"
    if kind == "literal_error" and len(loc) >= 2 and loc[-2] == "roles":
        value = str(error.get("input"))
        close = difflib.get_close_matches(value, ROLES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (roles: {', '.join(ROLES)})"
        return f"unknown role '{value}'{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "ip_v4_network":
        return _network_message(error.get("input"))
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message


def parse_document(data: Any, lines: LineMap) -> TopologyDoc:
    """Type-check plain data against the schema; all errors at once as TopologyError."""
    if not isinstance(data, dict):
        raise TopologyError([lines.problem((), "the topology must be a mapping of keys")])
    try:
        return TopologyDoc.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            # Pydantic appends the union member or validator name to some locations.
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
            problems.append(lines.problem(loc, _message(error)))
        raise TopologyError(problems) from None
