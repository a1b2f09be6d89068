"""Logging set-up shared by the platform, agents and tools (docs/protocol.md §4.4, §5.2).

An agent launched by the platform writes its log records to stderr as one JSON object per line
(:class:`JsonFormatter`); the platform reads every stderr line of every agent with
:func:`record_from_json` and re-emits the records in its own log, formatted by
:class:`AgentFormatter`. Lines that are not such records are plain text; :func:`split_syslog_prefix`
reads the ``<N>`` level prefix the original platform honoured on them.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from typing import Any

from volttron.utils.errors import ConfigError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5
AGENT_FORMAT = (
    "%(asctime)s (%(processName)s %(process)d [%(lineno)d]) %(remote_name)s %(levelname)s: %(message)s"
)

_HANDLER_MARK = "_volttron_setup_logging"
# Every attribute a LogRecord has before anything is added to it; JsonFormatter sends them all
# (minus args/exc_info), record_from_json types them.
_STR_FIELDS = ("name", "levelname", "pathname", "filename", "module", "funcName")
_OPTIONAL_STR_FIELDS = ("threadName", "processName", "exc_text", "stack_info", "taskName")
_INT_FIELDS = ("levelno", "lineno", "process")  # AGENT_FORMAT formats lineno and process with %d
_OPTIONAL_INT_FIELDS = ("thread",)
_FLOAT_FIELDS = ("created", "msecs", "relativeCreated")
_TYPED_FIELDS = frozenset(
    _STR_FIELDS + _OPTIONAL_STR_FIELDS + _INT_FIELDS + _OPTIONAL_INT_FIELDS + _FLOAT_FIELDS
)
_NEVER_COPIED = frozenset({"args", "exc_info", "message", "asctime", "msg"}) | _TYPED_FIELDS
# syslog priorities 0..7 (emerg..debug) as logging levels
_SYSLOG_LEVELS = (logging.CRITICAL, logging.CRITICAL, logging.CRITICAL, logging.ERROR,
                  logging.WARNING, logging.INFO, logging.INFO, logging.DEBUG)


def level_for_verbosity(verbose: int, quiet: int = 0) -> int:
    """The log level for ``-v``/``-q`` counts: WARNING, 10 lower per ``-v``, 10 higher per ``-q``.

    The result stays between 1 (everything) and CRITICAL.
    """
    if verbose < 0 or quiet < 0:
        raise ValueError("verbosity counts cannot be negative")
    return max(1, min(logging.CRITICAL, logging.WARNING - 10 * verbose + 10 * quiet))


def setup_logging(level: int = logging.WARNING, log_file: str | os.PathLike[str] | None = None, *,
                  max_bytes: int = DEFAULT_MAX_BYTES, backup_count: int = DEFAULT_BACKUP_COUNT,
                  json_records: bool | None = None) -> None:
    """Send the root logger's records to one destination at ``level``.

    ``log_file`` None means stderr, ``"-"`` stdout, anything else a file rotated at ``max_bytes``
    keeping ``backup_count`` old copies. Text is formatted by :class:`AgentFormatter`. With
    ``json_records`` None, records go out as JSON lines (:class:`JsonFormatter`) when they go to
    stderr, stderr is not a terminal and ``_LAUNCHED_BY_PLATFORM`` is set: that is how the platform
    starts agents. Calling again replaces the handler an earlier call installed; handlers installed
    by others are left alone.
    """
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    elif os.fspath(log_file) == "-":
        handler = logging.StreamHandler(sys.stdout)
    else:
        try:
            handler = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot open log file {os.fspath(log_file)}: {exc.strerror or exc}") from exc
    if json_records is None:
        json_records = log_file is None and _launched_by_platform()
    handler.setFormatter(JsonFormatter() if json_records else AgentFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)


def _launched_by_platform() -> bool:
    stderr = sys.stderr
    is_tty = bool(stderr is not None and hasattr(stderr, "isatty") and stderr.isatty())
    return bool(os.environ.get("_LAUNCHED_BY_PLATFORM")) and not is_tty


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: its attributes, ``msg`` with the arguments applied.

    ``args`` and ``exc_info`` are left out; the traceback travels as ``exc_text``. Values JSON cannot
    hold are sent as their ``str``. Formatting never raises, whatever the record holds.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record`` (no trailing newline; the handler adds it)."""
        data = {k: v for k, v in record.__dict__.items() if k not in ("args", "exc_info", "msg", "message")}
        data["msg"] = _message_of(record)
        if record.exc_info and not record.exc_text:
            try:
                data["exc_text"] = self.formatException(record.exc_info)
            except Exception as exc:  # a broken exception object must not lose the record
                data["exc_text"] = f"<traceback unavailable: {type(exc).__name__}>"
        try:
            return json.dumps(data, default=_safe_str)
        except (TypeError, ValueError, RecursionError):
            # non-string dict keys or circular values in an ``extra``: send every value as text
            return json.dumps({k: v if isinstance(v, (str, int, float, type(None))) else _safe_str(v)
                               for k, v in data.items()})


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # bad % arguments or a failing __str__: keep what we can
        return f"{_safe_str(record.msg)} % {_safe_str(record.args)}"


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def record_from_json(line: str, name_prefix: str = "agents") -> logging.LogRecord | None:
    """The log record in a line written by :class:`JsonFormatter`, or None for any other line.

    The record's logger name becomes ``<name_prefix>.<name>`` (just ``<name>`` when ``name_prefix``
    is empty) so the platform can route it through its own loggers; ``remote_name`` keeps the name
    the agent logged under. Fields are checked and typed, so formatting the record cannot fail.
    """
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or "msg" not in data:
        return None
    levelno = _level_of(data.get("levelno"), data.get("levelname"))
    if levelno is None:
        return None
    record = logging.makeLogRecord({})
    for key, value in data.items():
        if isinstance(key, str) and key.isidentifier() and not key.startswith("_") \
                and key not in _NEVER_COPIED and not hasattr(logging.LogRecord, key):
            setattr(record, key, value)
    for key in _STR_FIELDS:
        setattr(record, key, _as_str(data.get(key), getattr(record, key)))
    for key in _OPTIONAL_STR_FIELDS:
        setattr(record, key, None if data.get(key) is None else _as_str(data[key], None))
    for key in _INT_FIELDS:
        setattr(record, key, _as_number(int, data.get(key), 0))
    for key in _OPTIONAL_INT_FIELDS:
        setattr(record, key, _as_number(int, data.get(key), None))
    for key in _FLOAT_FIELDS:
        setattr(record, key, _as_number(float, data.get(key), getattr(record, key)))
    msg = data["msg"]
    record.msg = msg if isinstance(msg, str) else _safe_str(msg)
    record.args = ()
    record.exc_info = None
    record.levelno = levelno
    record.levelname = logging.getLevelName(levelno) if not isinstance(data.get("levelname"), str) \
        else data["levelname"]
    original = record.name
    if not isinstance(data.get("remote_name"), str):
        record.remote_name = original
    record.name = f"{name_prefix}.{original}" if name_prefix else original
    return record


def _level_of(levelno: Any, levelname: Any) -> int | None:
    if isinstance(levelno, int) and not isinstance(levelno, bool) and 0 <= levelno <= 1000:
        return levelno
    if isinstance(levelname, str):
        value = logging.getLevelName(levelname.upper())
        if isinstance(value, int):
            return value
    return None


def _as_str(value: Any, default: Any) -> Any:
    return value if isinstance(value, str) else (default if value is None else _safe_str(value))


def _as_number(kind: type, value: Any, default: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return kind(value)
        except (ValueError, OverflowError):  # NaN or infinity as an int
            return default
    return default


def split_syslog_prefix(line: str, default: int = logging.INFO) -> tuple[int, str]:
    """The level and text of a plain stderr line: ``"<3>disk full"`` is ``(ERROR, "disk full")``.

    Lines without a ``<0>``..``<7>`` prefix get ``default``.
    """
    if len(line) >= 3 and line[0] == "<" and line[2] == ">" and "0" <= line[1] <= "7":
        return _SYSLOG_LEVELS[int(line[1])], line[3:]
    return default, line


class AgentFormatter(logging.Formatter):
    """The platform log's format, for the platform's own records and those re-emitted from agents.

    ``%(remote_name)s`` is the agent's logger name on records from :func:`record_from_json`; on other
    records it is the record's logger name.
    """

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt or AGENT_FORMAT, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record``, giving it a ``remote_name`` when it has none."""
        if not isinstance(getattr(record, "remote_name", None), str):
            record.remote_name = record.name
        return super().format(record)
