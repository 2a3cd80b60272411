"""Reading and writing configuration files, with errors that name the file and line.

YAML is read with ruamel.yaml's round-trip loader: it builds plain Python objects
(never arbitrary classes, unlike PyYAML's full loader) and records where every key
and item came from, so a pydantic error's ``loc`` (``("masks", 1, "polygon")``) can be
walked back to its line::

    masks.yaml:7: masks[1].polygon: a polygon needs 3 to 64 points, got 2

Every problem in the file is reported at once (up to :data:`MAX_REPORTED`), each on its
own line, so a user fixes them in one pass instead of one run per typo.
"""

from __future__ import annotations

import difflib
import io
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from veil.config.schema import VeilConfig
from veil.core.errors import ConfigError, OutputError
from veil.core.files import replace_atomically

MAX_REPORTED = 10
"""At most this many problems are listed; the rest are counted."""

SCHEMA_HINT = "'veil config schema' lists every key"

Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration: where, at which key, and what is wrong."""

    path: str
    """The key path as a user reads it, such as ``masks[1].polygon``; empty for the root."""
    message: str
    line: int | None = None
    """1-based line in the source file, when the config came from a file."""

    def format(self, source_name: str) -> str:
        where = f"{source_name}:{self.line}" if self.line is not None else source_name
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigValidationError(ConfigError):
    """A configuration that parsed but does not follow the schema.

    ``issues`` holds every problem found; the message lists them one per line.
    """

    def __init__(self, source_name: str, issues: Sequence[ConfigIssue]) -> None:
        if not issues:
            raise ValueError("ConfigValidationError needs at least one issue")
        self.issues = tuple(issues)
        self.source_name = source_name
        lines = [issue.format(source_name) for issue in self.issues[:MAX_REPORTED]]
        if len(self.issues) > MAX_REPORTED:
            more = len(self.issues) - MAX_REPORTED
            lines.append(f"... and {more} more problem{'s' if more > 1 else ''}")
        # Each line names its own file and line, so the message is not prefixed again.
        super().__init__("\n".join(lines))
        first = self.issues[0]
        self.location = f"{source_name}:{first.line}" if first.line is not None else source_name


# --- Loading -----------------------------------------------------------------------------


def load_config(path: str | Path) -> VeilConfig:
    """Read and validate a YAML configuration file.

    Raises :class:`~veil.core.errors.ConfigError` (exit code 2) when the file is
    missing or unreadable, is not valid YAML, or does not follow the schema; the
    message names the file, the line and the fix.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {str(file)!r} does not exist",
            hint="check the path, or write one: 'veil config schema' describes every key",
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{str(file)!r} is a folder, not a configuration file",
            hint="give the path of a .yaml file",
        ) from None
    except OSError as error:
        raise ConfigError(
            f"cannot read configuration file {str(file)!r}: {error.strerror or error}",
            hint="check the file's permissions",
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            "the file is not UTF-8 text",
            location=f"{file}:{line}",
            hint="save it as UTF-8; a binary or video file given by mistake also ends here",
        ) from None
    return load_config_text(text, str(file))


def load_config_text(text: str, source_name: str = "<config>") -> VeilConfig:
    """Validate YAML configuration text; errors name ``source_name`` and the line."""
    document = _parse_yaml(text, source_name)
    if document is None:
        raise ConfigError(
            "the configuration is empty",
            location=source_name,
            hint="add at least 'masks:' with one mask, or 'dynamic:' with its 'methods'",
        )
    _reject_tags(document, source_name)
    if not isinstance(document, Mapping):
        raise ConfigError(
            f"the top level must be a mapping of keys such as 'masks:' and 'dynamic:', "
            f"got {_show(document)}",
            location=f"{source_name}:1",
            hint=SCHEMA_HINT,
        )
    return _validate(plain_yaml(document), source_name, document)


def parse_config_dict(data: Mapping[str, Any], source_name: str = "<config>") -> VeilConfig:
    """Validate a configuration built in code (from command-line flags, from JSON).

    Errors are the same as for files, without line numbers.
    """
    return _validate(dict(data), source_name, None)


def _parse_yaml(text: str, source_name: str) -> object:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except DuplicateKeyError as error:
        raise _yaml_error(error, source_name, _duplicate_key_message(error)) from None
    except MarkedYAMLError as error:
        raise _yaml_error(error, source_name, None) from None
    except YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}", location=source_name) from None


def _yaml_error(error: MarkedYAMLError, source_name: str, message: str | None) -> ConfigError:
    mark = error.problem_mark or error.context_mark
    location = f"{source_name}:{mark.line + 1}:{mark.column + 1}" if mark else source_name
    if message is None:
        message = f"YAML syntax error: {error.problem or error.context or 'unreadable'}"
        if error.context and error.problem and error.context_mark is not None:
            message += f" ({error.context} started at line {error.context_mark.line + 1})"
    return ConfigError(
        message,
        location=location,
        hint="check indentation (spaces, not tabs), colons after keys and closing brackets",
    )


def _duplicate_key_message(error: DuplicateKeyError) -> str:
    found = re.search(r'duplicate key "(?P<key>[^"]*)"', error.problem or "")
    key = found.group("key") if found else "?"
    # ruamel marks the mapping's start, not the first use of the key.
    where = (
        f" in the mapping that starts at line {error.context_mark.line + 1}"
        if error.context_mark
        else ""
    )
    return f"key {key!r} appears twice{where}: keep one"


def _reject_tags(document: object, source_name: str) -> None:
    """Refuse YAML tags such as ``!python/object``: configuration is plain data."""
    found = _find_tag(document, 0)
    if found is not None:
        tag, line = found
        raise ConfigError(
            f"YAML tags such as {tag!r} are not allowed",
            location=f"{source_name}:{line + 1}",
            hint="remove the tag; configuration is plain keys, lists, numbers and text",
        )


def _find_tag(node: object, line: int) -> tuple[str, int] | None:
    """The first explicit non-standard tag and its 0-based line, or None."""
    if isinstance(node, TaggedScalar):
        return str(node.tag), line
    if isinstance(node, CommentedMap | CommentedSeq) and node.tag.value is not None:
        return str(node.tag.value), line
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            found = _find_tag(value, _key_line(node, key))
            if found is not None:
                return found
    elif isinstance(node, CommentedSeq):
        for index, value in enumerate(node):
            found = _find_tag(value, node.lc.item(index)[0])
            if found is not None:
                return found
    return None


def plain_yaml(node: object, *, str_keys: bool = False) -> object:
    """ruamel's round-trip types as plain dicts, lists, floats and ints (for pydantic).

    ``str_keys`` turns every mapping key into a string (a YAML key may be a number).
    """
    if isinstance(node, Mapping):
        return {
            (str(key) if str_keys else key): plain_yaml(value, str_keys=str_keys)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [plain_yaml(item, str_keys=str_keys) for item in node]
    if node is None:
        return None
    if isinstance(node, bool | ScalarBoolean):
        # ScalarBoolean (an anchored true/false) is an int subclass: test it before int.
        return bool(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, str):
        return str(node)
    return node


def _validate(data: object, source_name: str, document: object) -> VeilConfig:
    try:
        return VeilConfig.model_validate(data)
    except ValidationError as error:
        issues = [_issue(detail, document) for detail in error.errors(include_url=False)]
        issues.sort(key=lambda issue: issue.line if issue.line is not None else 0)
        raise ConfigValidationError(source_name, issues) from None


# --- Turning pydantic errors into messages ---------------------------------------------------


def _issue(detail: ErrorDetails, document: object) -> ConfigIssue:
    loc: Loc = tuple(detail["loc"])
    kind = detail["type"]
    value = detail.get("input")
    ctx = detail.get("ctx") or {}
    path = format_path(loc)
    line = locate_line(document, loc) if document is not None else None

    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = format_path(loc[:-1]) or "the top level"
        allowed = sorted(_allowed_keys(loc[:-1]))
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        fix = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(allowed)}"
        return ConfigIssue("", f"unknown key {key!r} in {parent}; {fix}", line)
    if kind == "missing":
        key = str(loc[-1])
        parent = format_path(loc[:-1]) or "the top level"
        return ConfigIssue("", f"{parent} needs the key {key!r}", line)
    if kind in {"value_error", "assertion_error"}:
        message = str(ctx.get("error", detail["msg"]))
        return ConfigIssue(path, message, line)
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return ConfigIssue(path, f"expected a mapping of keys, got {_show(value)}", line)
    if kind in {"list_type", "tuple_type"}:
        example = _LIST_EXAMPLES.get(str(loc[-1]) if loc else "", "a list")
        return ConfigIssue(path, f"expected {example}, got {_show(value)}", line)
    if kind in {"enum", "literal_error"}:
        expected = str(ctx.get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected) or [expected]
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        fix = f"; did you mean {close[0]!r}?" if close else ""
        return ConfigIssue(path, f"expected {expected}, got {_show(value)}{fix}", line)
    message = re.sub(r"^Input should be ", "must be ", detail["msg"])
    message = message[:1].lower() + message[1:]
    if not isinstance(value, Mapping | list | tuple):
        message += f", got {_show(value)}"
    return ConfigIssue(path, message, line)


_LIST_EXAMPLES = {
    "rect": "a list such as [x, y, width, height]",
    "polygon": "a list of points such as [[x, y], [x, y], [x, y]]",
    "include": "a list of polygons such as [[[x, y], [x, y], [x, y]]]",
    "exclude": "a list of polygons such as [[[x, y], [x, y], [x, y]]]",
    "methods": "a list such as [humans, faces]",
    "masks": "a list of masks, each starting with '- '",
}
"""What a list looks like, for the keys a user most often writes wrongly."""


def format_path(loc: Loc) -> str:
    """``("masks", 1, "polygon")`` as ``masks[1].polygon``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def locate_line(document: object, loc: Loc) -> int | None:
    """The 1-based line of the deepest node of ``loc`` present in a ruamel document.

    A missing key points at its parent (where it should be added); an unknown key at
    itself; a bad value at its key, which is where a user looks.
    """
    if not isinstance(document, CommentedMap | CommentedSeq):
        return None
    node: object = document
    line: int = document.lc.line
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = _key_line(node, part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0]
            node = node[part]
        else:
            break
    return line + 1


def _key_line(node: CommentedMap, key: object) -> int:
    """The 0-based line of ``key`` in ``node``; a key merged in with ``<<: *anchor`` has
    no line of its own there, so the mapping's own line stands in for it."""
    try:
        return int(node.lc.key(key)[0])
    except KeyError:
        return int(node.lc.line)


def _allowed_keys(loc: Loc) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model is not None else []


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The schema model that validates the mapping at ``loc``, following field types."""
    current: object = VeilConfig
    for part in loc:
        current = _strip_optional(current)
        if isinstance(part, str):
            if not (isinstance(current, type) and issubclass(current, BaseModel)):
                return None
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        else:
            args = typing.get_args(current)
            origin = typing.get_origin(current)
            if origin is list and args:
                current = args[0]
            elif origin is tuple and args:
                current = args[min(part, len(args) - 1)]
            else:
                return None
    current = _strip_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _strip_optional(annotation: object) -> object:
    if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _show(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- Writing ---------------------------------------------------------------------------------


def dump_config_text(config: VeilConfig) -> str:
    """A configuration as YAML text; only settings that differ from the defaults are written.

    ``load_config_text(dump_config_text(c)) == c`` for every valid ``c``.
    """
    data = config.model_dump(mode="json", exclude_defaults=True)
    document = CommentedMap()
    document["version"] = config.version
    for key, value in data.items():
        if key != "version":
            document[key] = _yaml_node(key, value)
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    out = io.StringIO()
    out.write("# Veil configuration. 'veil config schema' describes every key.\n")
    yaml.dump(document, out)
    return out.getvalue()


_FIRST_KEYS = ("name", "enabled", "units", "rect", "polygon", "methods")


def _yaml_node(key: str, value: object) -> object:
    """Coordinates as short flow lists (``[0.1, 0.2]``), everything else in block style."""
    if isinstance(value, dict):
        node = CommentedMap()
        # What a mask is comes before how it looks: name and shape first.
        ordered = sorted(value, key=lambda k: _FIRST_KEYS.index(k) if k in _FIRST_KEYS else 99)
        for k in ordered:
            node[k] = _yaml_node(k, value[k])
        return node
    if isinstance(value, list):
        if key in {"rect", "polygon", "include", "exclude", "methods"} or _is_point(value):
            return _flow(value)
        seq = CommentedSeq()
        seq.extend(_yaml_node("", item) for item in value)
        return seq
    return value


def _is_point(value: list[object]) -> bool:
    return all(isinstance(v, int | float) for v in value)


def _flow(value: object) -> object:
    if not isinstance(value, list):
        return value
    seq = CommentedSeq(_flow(v) for v in value)
    seq.fa.set_flow_style()
    return seq


def dump_config(config: VeilConfig, path: str | Path, *, overwrite: bool = True) -> None:
    """Write a configuration as YAML, atomically: an existing file is replaced only
    when the new one is completely written, so a failure never leaves half a config.

    With ``overwrite=False`` an existing file is refused with a ConfigError.
    """
    write_text_atomic(Path(path), dump_config_text(config), overwrite=overwrite)


def write_text_atomic(path: Path, text: str, *, overwrite: bool) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place.

    The rename is atomic on one file system, so readers see the old file or the new
    one, never a mix. Raises ConfigError when ``path`` exists and ``overwrite`` is
    false, and OutputError when the folder cannot be written.
    """
    if path.exists() and not overwrite:
        raise ConfigError(f"{str(path)!r} already exists", hint="pass --overwrite to replace it")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: the folder {str(folder)!r} does not exist")
    try:
        # A mode of the existing file is kept; a new file gets the usual 0644.
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    except OSError as error:
        raise OutputError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
    data = text.encode("utf-8")  # what a text file with newline="\n" would hold
    try:
        replace_atomically(path, data, mode)
    except OSError as error:
        raise OutputError(
            f"cannot write {str(path)!r}: {error.strerror or error}",
            hint="check free space and permissions; the previous file, if any, is unchanged",
        ) from None
