"""Agent configuration files and the platform's INI file (docs/protocol.md §4.3, §5.3).

:func:`load_config` reads YAML, or JSON with ``#``, ``//`` and ``/* */`` comments, as the original
platform did. A syntax error is a :class:`~volttron.utils.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import configparser
import io
import json
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from volttron.utils.errors import ConfigError
from volttron.utils.files import atomic_write

PLATFORM_SECTION = "volttron"

# A JSON string (kept), a block comment, or a line comment. Strings come first so comment markers
# inside them are never touched.
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|/\*.*?(?:\*/|\Z)|(?:#|//)[^\n]*', re.DOTALL)


def strip_comments(text: str) -> str:
    """``text`` without ``#``, ``//`` and ``/* */`` comments outside double-quoted strings.

    Block comments are replaced by the line breaks they held, so line numbers stay the same.
    """
    return _strip(text)[0]


def _strip(text: str) -> tuple[str, bool]:
    """The stripped text, and whether a ``//`` or ``/* */`` comment (never valid YAML) was removed."""
    c_style = False

    def replace(match: re.Match[str]) -> str:
        nonlocal c_style
        token = match.group(0)
        if token.startswith('"'):
            return token
        if token.startswith(("//", "/*")):
            c_style = True
        return "\n" * token.count("\n")

    return _TOKENS.sub(replace, text), c_style


def load_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The mapping in an agent configuration file; ``{}`` for None or an empty file.

    YAML is tried first. When it fails, does not give a mapping, or the file has ``//`` or ``/* */``
    comments, the text is read as JSON with comments stripped. The top level must be a mapping.
    """
    if path is None:
        return {}
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read configuration file: {exc}") from exc
    return parse_config(text, name)


def parse_config(text: str, source: str = "<config>") -> dict[str, Any]:
    """The mapping in configuration ``text`` (see :func:`load_config`); ``source`` names it in errors."""
    stripped, c_style = _strip(text)
    if not stripped.strip():
        return {}
    yaml_error: yaml.YAMLError | None = None
    value: Any = None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        yaml_error = exc
    if yaml_error is None and not c_style and (value is None or isinstance(value, dict)):
        return value or {}
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as exc:
        if _looks_like_json(stripped):
            where = f"line {exc.lineno}, column {exc.colno}"
            raise ConfigError(f"{source}: {where}: invalid JSON: {exc.msg}") from None
        if yaml_error is not None:
            raise ConfigError(f"{source}: {_describe_yaml_error(yaml_error)}") from None
        # Otherwise the YAML value stands: a mapping with '//' in a plain value (a URL), or a
        # document that is not a mapping, refused below.
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, not a {_kind(value)}")
    return value


def _looks_like_json(stripped: str) -> bool:
    return stripped.lstrip()[:1] in ("{", "[")


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__)


def update_kwargs_with_config(
    kwargs: MutableMapping[str, Any], config: Mapping[str, Any]
) -> MutableMapping[str, Any]:
    """Copy ``config`` into ``kwargs`` with ``-`` in keys turned into ``_``; returns ``kwargs``."""
    for key, value in config.items():
        kwargs[key.replace("-", "_")] = value
    return kwargs


def _parser() -> configparser.ConfigParser:
    # No interpolation: values such as URLs may hold '%'.
    return configparser.ConfigParser(interpolation=None)


def _read_ini(path: Path) -> configparser.ConfigParser:
    parser = _parser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return parser
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read platform configuration: {exc}") from exc
    try:
        try:
            parser.read_string(text, source=str(path))
        except configparser.MissingSectionHeaderError:
            # The original tolerates a file of bare "key = value" lines.
            parser = _parser()
            parser.read_string(f"[{PLATFORM_SECTION}]\n{text}", source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: invalid platform configuration: {exc}") from None
    return parser


def load_platform_config(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``[volttron]`` section of ``$VOLTTRON_HOME/config``; ``{}`` when the file is missing."""
    parser = _read_ini(Path(path))
    if not parser.has_section(PLATFORM_SECTION):
        return {}
    return dict(parser.items(PLATFORM_SECTION))


def write_platform_config(path: str | os.PathLike[str], values: Mapping[str, Any]) -> None:
    """Replace the ``[volttron]`` section of the platform configuration file with ``values``, atomically.

    Other sections of an existing file are kept. Values are written as text (``True`` for booleans).
    """
    target = Path(path)
    parser = _read_ini(target)
    if parser.has_section(PLATFORM_SECTION):
        parser.remove_section(PLATFORM_SECTION)
    parser.add_section(PLATFORM_SECTION)
    for key, value in values.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
            raise ConfigError(f"{target}: invalid platform configuration key {key!r}")
        parser.set(PLATFORM_SECTION, key.lower(), str(value))
    out = io.StringIO()
    parser.write(out)
    atomic_write(target, out.getvalue())
