"""Log set-up, the JSON record lines agents write, and parsing them back on the platform side."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest

from volttron.utils.errors import ConfigError
from volttron.utils.logging import (
    AGENT_FORMAT,
    AgentFormatter,
    JsonFormatter,
    level_for_verbosity,
    record_from_json,
    setup_logging,
    split_syslog_prefix,
)


@pytest.fixture
def clean_root():
    """Restore the root logger's handlers and level after a test that calls setup_logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _record(msg="hello %s", args=("world",), level=logging.INFO, name="listener.agent", **extra):
    record = logging.LogRecord(name, level, "/src/agent.py", 42, msg, args, None, func="on_match")
    for key, value in extra.items():
        setattr(record, key, value)
    return record


@pytest.mark.parametrize(
    "verbose,quiet,level",
    [(0, 0, logging.WARNING), (1, 0, logging.INFO), (2, 0, logging.DEBUG), (3, 0, 1), (9, 0, 1),
     (0, 1, logging.ERROR), (0, 2, logging.CRITICAL), (0, 7, logging.CRITICAL), (2, 1, logging.INFO)],
)
def test_level_for_verbosity(verbose: int, quiet: int, level: int) -> None:
    assert level_for_verbosity(verbose, quiet) == level


def test_level_for_verbosity_rejects_negative() -> None:
    with pytest.raises(ValueError):
        level_for_verbosity(-1)


def test_json_formatter_one_line_with_message_applied() -> None:
    line = JsonFormatter().format(_record(msg="multi\nline %s", args=("arg",)))
    assert "\n" not in line
    data = json.loads(line)
    assert data["msg"] == "multi\nline arg"
    assert "args" not in data and "exc_info" not in data
    assert data["name"] == "listener.agent"
    assert data["levelno"] == logging.INFO and data["levelname"] == "INFO"
    assert data["lineno"] == 42 and data["funcName"] == "on_match"


def test_json_formatter_includes_exc_text() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("a", logging.ERROR, "p.py", 1, "failed", (), sys.exc_info())
    data = json.loads(JsonFormatter().format(record))
    assert "Traceback" in data["exc_text"] and "RuntimeError: boom" in data["exc_text"]


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


@pytest.mark.parametrize(
    "record",
    [
        _record(msg="%s and %s", args=("only one",)),          # wrong argument count
        _record(msg="%d", args=("not a number",)),
        _record(msg=_Unprintable(), args=()),
        _record(msg=None, args=()),
        _record(extra_obj=object()),
        _record(extra_obj=_Unprintable()),
        _record(weird={(1, 2): "tuple key"}),
        _record(exc_info=True),
        _record(msg="%(a)s", args=({"a": 1},)),
    ],
    ids=["arg-count", "arg-type", "unprintable-msg", "none-msg", "object-extra", "unprintable-extra",
         "tuple-key", "exc_info-true", "dict-args"],
)
def test_json_formatter_never_raises(record: logging.LogRecord) -> None:
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert isinstance(data["msg"], str)
    assert record_from_json(line) is not None


def test_json_formatter_circular_extra() -> None:
    loop: dict = {}
    loop["self"] = loop
    data = json.loads(JsonFormatter().format(_record(loop=loop)))
    assert data["msg"] == "hello world"
    assert isinstance(data["loop"], str)


def test_round_trip_through_json() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        original = logging.LogRecord("listener.agent", logging.ERROR, "/a/agent.py", 77, "lost %s", ("k",),
                                     sys.exc_info(), func="run")
    original.topic = "devices/all"
    line = JsonFormatter().format(original)
    record = record_from_json(line + "\n")
    assert record is not None
    assert record.name == "agents.listener.agent"
    assert record.remote_name == "listener.agent"
    assert record.getMessage() == "lost k"
    assert record.args == ()
    assert record.levelno == logging.ERROR and record.levelname == "ERROR"
    assert record.lineno == 77 and record.funcName == "run" and record.pathname == "/a/agent.py"
    assert record.process == original.process and record.created == original.created
    assert "KeyError: 'missing'" in record.exc_text
    assert record.exc_info is None
    assert record.topic == "devices/all"
    text = AgentFormatter().format(record)
    assert f"({original.processName} {original.process} [77]) listener.agent ERROR: lost k" in text
    assert "KeyError: 'missing'" in text


def test_round_trip_without_prefix() -> None:
    record = record_from_json(JsonFormatter().format(_record()), name_prefix="")
    assert record is not None and record.name == "listener.agent"


def test_percent_signs_in_message_are_not_reformatted() -> None:
    line = JsonFormatter().format(_record(msg="100%% done %s", args=("%d",)))
    record = record_from_json(line)
    assert record is not None and record.getMessage() == "100% done %d"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "plain text from print()",
        "Traceback (most recent call last):",
        "{not json}",
        "{\"name\": \"x\", \"msg\": ",
        "[1, 2, 3]",
        '["name", "msg"]',
        "{}",
        '{"name": "x", "levelno": 20}',                           # no msg
        '{"msg": "x", "levelno": 20}',                            # no name
        '{"name": 5, "msg": "x", "levelno": 20}',
        '{"name": "x", "msg": "m"}',                              # no level
        '{"name": "x", "msg": "m", "levelname": "LOUD"}',
        '{"name": "x", "msg": "m", "levelno": true}',
        '{"name": "x", "msg": "m", "levelno": -5}',
        "{" + "[" * 50000 + "}",
        "{\"a\": " + "[" * 50000 + "]" * 50000 + "}",
    ],
)
def test_record_from_json_rejects_other_lines(line: str) -> None:
    assert record_from_json(line) is None


def test_record_from_json_types_odd_fields() -> None:
    line = json.dumps({
        "name": "a", "msg": {"not": "text"}, "levelname": "warning", "lineno": "12", "process": [1],
        "created": "yesterday", "processName": 7, "exc_text": None, "getMessage": "shadow",
        "_private": 1, "message": "stale", "args": [1, 2], "exc_info": [1], "extra": "kept",
        "1bad": "x", "asctime": "then",
    })
    record = record_from_json(line)
    assert record is not None
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "{'not': 'text'}"
    assert record.lineno == 0 and record.process == 0 and isinstance(record.created, float)
    assert record.processName == "7"
    assert record.args == () and record.exc_info is None
    assert record.extra == "kept"
    assert not hasattr(record, "_private") and not hasattr(record, "1bad")
    AgentFormatter().format(record)  # must not raise
    JsonFormatter().format(record)


def test_record_from_json_keeps_given_remote_name() -> None:
    line = JsonFormatter().format(_record(remote_name="my.agent"))
    record = record_from_json(line)
    assert record is not None and record.remote_name == "my.agent"


@pytest.mark.parametrize(
    "line,expected",
    [("<3>disk full", (logging.ERROR, "disk full")), ("<0>x", (logging.CRITICAL, "x")),
     ("<4>w", (logging.WARNING, "w")), ("<6>i", (logging.INFO, "i")), ("<7>", (logging.DEBUG, "")),
     ("<8>x", (logging.INFO, "<8>x")), ("<a>x", (logging.INFO, "<a>x")), ("", (logging.INFO, "")),
     ("plain", (logging.INFO, "plain"))],
)
def test_split_syslog_prefix(line: str, expected: tuple[int, str]) -> None:
    assert split_syslog_prefix(line) == expected


def test_agent_formatter_for_platform_records() -> None:
    record = _record(name="volttron.server.aip")
    text = AgentFormatter().format(record)
    assert f"({record.processName} {record.process} [42]) volttron.server.aip INFO: hello world" in text
    assert AgentFormatter().format(logging.makeLogRecord({"msg": "bare"})).endswith("bare")
    assert "remote_name" in AGENT_FORMAT


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _emit(message: str) -> None:
    logging.getLogger("test.volttron.logging").warning(message)


def test_setup_logging_stderr_text(clean_root, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delenv("_LAUNCHED_BY_PLATFORM", raising=False)
    setup_logging(logging.INFO)
    _emit("to stderr")
    assert "test.volttron.logging WARNING: to stderr" in stream.getvalue()
    assert clean_root.level == logging.INFO


@pytest.mark.parametrize("tty,launched,is_json",
                         [(False, "1", True), (True, "1", False), (False, None, False), (False, "", False)])
def test_setup_logging_json_when_launched_by_platform(clean_root, monkeypatch: pytest.MonkeyPatch, tty: bool,
                                                      launched: str | None, is_json: bool) -> None:
    stream = _Stream(tty=tty)
    monkeypatch.setattr(sys, "stderr", stream)
    if launched is None:
        monkeypatch.delenv("_LAUNCHED_BY_PLATFORM", raising=False)
    else:
        monkeypatch.setenv("_LAUNCHED_BY_PLATFORM", launched)
    setup_logging()
    _emit("maybe json")
    line = stream.getvalue().strip()
    record = record_from_json(line)
    assert (record is not None) == is_json
    if is_json:
        assert record.getMessage() == "maybe json"


def test_setup_logging_explicit_json_to_stdout(clean_root, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Stream(tty=True)
    monkeypatch.setattr(sys, "stdout", out)
    setup_logging(log_file="-", json_records=True)
    _emit("to stdout")
    assert json.loads(out.getvalue())["msg"] == "to stdout"


def test_setup_logging_replaces_own_handler_only(clean_root, monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = logging.NullHandler()
    clean_root.addHandler(foreign)
    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))
    setup_logging()
    setup_logging()
    setup_logging(log_file="-")
    ours = [h for h in clean_root.handlers if getattr(h, "_volttron_setup_logging", False)]
    assert len(ours) == 1
    assert foreign in clean_root.handlers


def test_setup_logging_rotating_file(clean_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_LAUNCHED_BY_PLATFORM", "1")
    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))
    log = tmp_path / "volttron.log"
    setup_logging(logging.DEBUG, str(log), max_bytes=400, backup_count=2)
    for i in range(40):
        _emit(f"line {i:03d} " + "x" * 40)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["volttron.log", "volttron.log.1", "volttron.log.2"]
    assert "line 039" in log.read_text()
    assert "WARNING: line" in log.read_text()  # a file gets text even when launched by the platform
    assert all(p.stat().st_size <= 400 for p in tmp_path.iterdir())


def test_setup_logging_unwritable_file(clean_root, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open log file"):
        setup_logging(log_file=tmp_path / "missing-dir" / "x.log")
