"""Agent configuration files (YAML, JSON with comments) and the platform's INI file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from volttron.utils.config import (
    load_config,
    load_platform_config,
    parse_config,
    strip_comments,
    update_kwargs_with_config,
    write_platform_config,
)
from volttron.utils.errors import ConfigError


def _write(tmp_path: Path, text: str, name: str = "config") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_none_and_empty(tmp_path: Path) -> None:
    assert load_config(None) == {}
    assert load_config(_write(tmp_path, "")) == {}
    assert load_config(_write(tmp_path, "  \n\n")) == {}
    assert load_config(_write(tmp_path, "# only a comment\n")) == {}
    assert load_config(_write(tmp_path, "// only a comment\n/* and a block */\n")) == {}


def test_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, "topic: devices/all\nperiod: 5\nurl: http://host:8080/x # trailing comment\n"
                            "items:\n  - a\n  - b\n")
    assert load_config(str(path)) == {"topic": "devices/all", "period": 5, "url": "http://host:8080/x",
                                      "items": ["a", "b"]}


def test_plain_json(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, '{"a": 1, "b": [true, null]}')) == {"a": 1, "b": [True, None]}


def test_json_with_comments_outside_strings(tmp_path: Path) -> None:
    text = """{
    // line comment
    "url": "http://example.com/a#frag",   # hash comment
    "pattern": "a // b /* c */ # d",      /* block */
    "escaped": "quote \\" // still inside",
    /* multi
       line */
    "tab":\t1
}
"""
    assert load_config(_write(tmp_path, text)) == {
        "url": "http://example.com/a#frag",
        "pattern": "a // b /* c */ # d",
        "escaped": 'quote " // still inside',
        "tab": 1,
    }


def test_strip_comments_keeps_strings_and_lines() -> None:
    text = '{"a": "x // y", // gone\n "b": /* gone\n gone */ "#kept"} # gone'
    stripped = strip_comments(text)
    assert stripped == '{"a": "x // y", \n "b": \n "#kept"} '
    assert stripped.count("\n") == text.count("\n")
    assert strip_comments('"unterminated // string') == '"unterminated '
    assert strip_comments("/* never closed\n\n") == "\n\n"


@pytest.mark.parametrize(
    "text,line",
    [
        ('{\n  "a": 1,\n  "b": 2\n  "c": 3\n}\n', 4),                 # missing comma
        ('{\n  // note\n  "a": 1,\n  "b": \n}\n', 5),                 # missing value, with a comment
        ('{\n  /* one\n  two\n  three */ "a": tru\n}\n', 4),         # block comment keeps line numbers
        ("key: value\nlist: [1, 2\nother: 3\n", 3),                  # YAML flow sequence never closed
        ("a: 1\n b: 2\n", 2),                                        # YAML bad indentation
        ("\ta: 1\n", 1),                                             # a tab YAML cannot start with
    ],
)
def test_syntax_error_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = _write(tmp_path, text, "agent.config")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"line {line}," in message


@pytest.mark.parametrize("text,kind", [("[1, 2]", "list"), ("- a\n- b\n", "list"), ("just text", "string"),
                                       ("42", "number"), ("true", "boolean"), ("// c\n[1]", "list")])
def test_top_level_must_be_mapping(tmp_path: Path, text: str, kind: str) -> None:
    with pytest.raises(ConfigError, match=f"top level must be a mapping, not a {kind}"):
        load_config(_write(tmp_path, text))


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)
    bad = tmp_path / "latin1"
    bad.write_bytes(b"a: \xe9\xff\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)


def test_parse_config_source_name() -> None:
    with pytest.raises(ConfigError, match="^AGENT_CONFIG: line 1"):
        parse_config("{oops", "AGENT_CONFIG")


def test_update_kwargs_with_config() -> None:
    kwargs = {"existing": 1}
    result = update_kwargs_with_config(kwargs, {"heartbeat-period": 5, "log_level": "INFO", "a-b-c": None})
    assert result is kwargs
    assert kwargs == {"existing": 1, "heartbeat_period": 5, "log_level": "INFO", "a_b_c": None}


def test_platform_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "config"
    assert load_platform_config(path) == {}
    values = {"message-bus": "zmq", "vip-address": "tcp://127.0.0.1:22916", "instance-name": "volttron1",
              "agent-isolation-mode": False, "web-secret": "a%b"}
    write_platform_config(path, values)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text().startswith("[volttron]\n")
    assert load_platform_config(path) == {k: str(v) for k, v in values.items()}
    assert not [p for p in tmp_path.iterdir() if p.name != "config"]


def test_platform_config_keeps_other_sections(tmp_path: Path) -> None:
    path = _write(tmp_path, "[volttron]\nold = 1\n\n[platform.auth]\nallow = yes\n")
    write_platform_config(path, {"instance-name": "v2"})
    assert load_platform_config(path) == {"instance-name": "v2"}
    assert "[platform.auth]\nallow = yes" in path.read_text()


def test_platform_config_without_section_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "message-bus = zmq\ninstance-name = bare\n")
    assert load_platform_config(path) == {"message-bus": "zmq", "instance-name": "bare"}


def test_platform_config_multiline_value_and_other_section_only(tmp_path: Path) -> None:
    path = _write(tmp_path, "[volttron]\naddress = tcp://a:1\n  tcp://b:2\n")
    assert load_platform_config(path) == {"address": "tcp://a:1\ntcp://b:2"}
    assert load_platform_config(_write(tmp_path, "[other]\nx = 1\n", "c2")) == {}


@pytest.mark.parametrize("text", ["[volttron]\nkey = 1\nkey = 2\n", "[volttron\nkey = 1\n",
                                  "[volttron]\nno separator line\n"])
def test_platform_config_errors(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=str(path)):
        load_platform_config(path)


@pytest.mark.parametrize("key", ["", "has space", "a=b", "new\nline"])
def test_write_platform_config_rejects_bad_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="invalid platform configuration key"):
        write_platform_config(tmp_path / "config", {key: "x"})
    assert not (tmp_path / "config").exists()
