"""``vctl config`` without a platform: argument handling, local checks, output, editing.

The store is a fake connection that records calls; ``_run`` (the one place the commands connect)
is pointed at it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from volttron.client.commands import config as config_cmd
from volttron.client.commands.cli import EXIT_ERROR, EXIT_REMOTE, EXIT_USAGE, CommandError, run_cli
from volttron.client.commands.vctl import vctl


class FakeStore:
    """Answers the store's methods from a dict ``{identity: {name: (type, data)}}``."""

    def __init__(self) -> None:
        self.configs: dict[str, dict[str, tuple[str, str]]] = {}
        self.calls: list[tuple[str, tuple, dict]] = []

    def call(self, method: str, *args: Any, peer: str, **kwargs: Any) -> Any:
        assert peer == "platform.config_store"
        self.calls.append((method, args, kwargs))
        if method == "manage_store":
            identity, name, data, config_type = args
            self.configs.setdefault(identity, {})[name] = (config_type, data)
            return None
        if method == "manage_store_configs":
            identity, items = args
            for item in items:
                entry = (item["config_type"], item["raw_contents"])
                self.configs.setdefault(identity, {})[item["name"]] = entry
            return [item["name"] for item in items]
        if method == "manage_list_stores":
            return sorted(self.configs)
        if method == "manage_list_configs":
            return sorted(self.configs.get(args[0], {}))
        found = self.configs.get(args[0], {}).get(args[1]) if len(args) > 1 else None
        if method in ("manage_get", "manage_get_metadata", "manage_delete_config") and found is None:
            raise CommandError(f"no configuration {args[1]!r} for {args[0]!r}", EXIT_REMOTE)
        if method == "manage_get":
            return found[1] if kwargs.get("raw", True) else json.loads(found[1])
        if method == "manage_get_metadata":
            return {"type": found[0], "modified": "2024-01-01T00:00:00.000000+00:00", "data": found[1]}
        if method == "manage_delete_config":
            del self.configs[args[0]][args[1]]
            return None
        if method == "manage_delete_store":
            self.configs.pop(args[0], None)
            return None
        if method == "manage_get_all":
            return {"config": {"resolved": True}}
        raise AssertionError(f"unexpected call {method}")

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.calls]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    fake = FakeStore()
    monkeypatch.setattr(config_cmd, "_run", lambda opts, work: work(config_cmd.ConfigStoreCalls(fake)))
    return fake


def vctl_run(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None,
             monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    with pytest.raises(SystemExit) as exc:
        run_cli(vctl, "vctl", args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_store_defaults_to_json_and_sends_the_text_as_written(store, tmp_path, capsys) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"a": 1} // a comment\n')
    assert vctl_run(["config", "store", "agent", "config", str(path)], capsys) == (0, "", "")
    assert store.calls == [("manage_store", ("agent", "config", '{"a": 1} // a comment\n', "json"), {})]


def test_store_csv_raw_and_stdin(store, tmp_path, capsys, monkeypatch) -> None:
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n")
    assert vctl_run(["config", "store", "agent", "reg", str(path), "--csv"], capsys)[0] == 0
    assert vctl_run(["config", "store", "agent", "note", "--raw"], capsys, "any text", monkeypatch)[0] == 0
    assert store.configs["agent"] == {"reg": ("csv", "a,b\n1,2\n"), "note": ("raw", "any text")}


def test_a_json_syntax_error_is_one_line_naming_file_and_line_and_nothing_is_sent(store, tmp_path,
                                                                                    capsys) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b" 2\n}\n')
    code, out, err = vctl_run(["config", "store", "agent", "config", str(path)], capsys)
    assert code == EXIT_ERROR and out == ""
    assert err == f"vctl: error: {path}: line 3, column 7: invalid JSON: Expecting ':' delimiter\n"
    assert store.calls == []


@pytest.mark.parametrize(("text", "flag", "message"), [
    ("42", "--json", "must be an object or a list"),
    ("", "--csv", "needs a header row"),
    ("[1, 2,]", "--json", "line 1, column 7"),
])
def test_other_bad_contents_are_refused_locally(store, tmp_path, capsys, text, flag, message) -> None:
    path = tmp_path / "f"
    path.write_text(text)
    code, _, err = vctl_run(["config", "store", "agent", "x", str(path), flag], capsys)
    assert code == EXIT_ERROR and message in err and err.count("\n") == 1 and store.calls == []


def test_unreadable_files_and_conflicting_flags(store, tmp_path, capsys) -> None:
    code, _, err = vctl_run(["config", "store", "agent", "x", str(tmp_path / "missing.json")], capsys)
    assert code == EXIT_ERROR and "missing.json: cannot read" in err
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe")
    code, _, err = vctl_run(["config", "store", "agent", "x", str(binary), "--raw"], capsys)
    assert code == EXIT_ERROR and "not UTF-8 text (byte 0)" in err
    code, _, err = vctl_run(["config", "store", "agent", "x", str(binary), "--raw", "--csv"], capsys)
    assert code == EXIT_USAGE and "not --csv and --raw" in err
    assert store.calls == []


def test_get_prints_json_or_raw_text(store, capsys) -> None:
    store.configs["agent"] = {"config": ("json", '{"b": [1, 2]}'), "note": ("raw", "line\n")}
    out = vctl_run(["config", "get", "agent", "config"], capsys)[1]
    assert out == json.dumps({"b": [1, 2]}, indent=2) + "\n"
    assert vctl_run(["config", "get", "agent", "config", "--raw"], capsys)[1] == '{"b": [1, 2]}\n'
    assert vctl_run(["config", "get", "agent", "note", "--raw"], capsys)[1] == "line\n"
    code, out, err = vctl_run(["config", "get", "agent", "nope"], capsys)
    assert (code, out, err) == (EXIT_REMOTE, "", "vctl: error: no configuration 'nope' for 'agent'\n")
    assert json.loads(vctl_run(["config", "get-all", "agent"], capsys)[1]) == {"config": {"resolved": True}}


def test_list_and_delete(store, capsys) -> None:
    store.configs = {"b": {"x": ("raw", "1"), "y": ("raw", "2")}, "a": {"z": ("raw", "3")}}
    assert vctl_run(["config", "list"], capsys)[1] == "a\nb\n"
    assert vctl_run(["config", "list", "b"], capsys)[1] == "x\ny\n"
    assert json.loads(vctl_run(["--json", "config", "list", "b"], capsys)[1]) == ["x", "y"]
    assert vctl_run(["config", "delete", "b", "x"], capsys)[0] == 0
    assert vctl_run(["config", "delete", "a", "--all"], capsys)[0] == 0
    assert store.configs == {"b": {"y": ("raw", "2")}}
    for args in (["config", "delete", "b"], ["config", "delete", "b", "y", "--all"]):
        code, _, err = vctl_run(args, capsys)
        assert code == EXIT_USAGE and "NAME or --all" in err
    assert store.configs == {"b": {"y": ("raw", "2")}}


def make_tree(root: Path) -> None:
    (root / "devices" / "campus").mkdir(parents=True)
    (root / "registry").mkdir()
    (root / ".git").mkdir()
    (root / "config").write_text('# settings\n{"device": "config://devices/campus/rtu1"}')
    (root / "devices" / "campus" / "rtu1").write_text('{"registry": "config://registry/rtu1.csv"}')
    (root / "registry" / "rtu1.csv").write_text("Point\nT\n")
    (root / "settings.json").write_text("[1]")
    (root / "readme").write_text("plain words")
    (root / ".hidden").write_text("skipped")
    (root / ".git" / "HEAD").write_text("skipped")


def test_a_directory_is_collected_named_by_relative_path_and_typed(tmp_path) -> None:
    make_tree(tmp_path)
    configs = config_cmd.collect_directory(str(tmp_path))
    assert [(c["name"], c["config_type"]) for c in configs] == [
        ("config", "json"), ("readme", "raw"), ("settings.json", "json"), ("devices/campus/rtu1", "json"),
        ("registry/rtu1.csv", "csv")]
    assert configs[0]["raw_contents"].startswith("# settings")


def test_store_dir_sends_one_call_and_a_bad_file_stops_everything(store, tmp_path, capsys) -> None:
    make_tree(tmp_path)
    code, out, _ = vctl_run(["config", "store-dir", "agent", str(tmp_path)], capsys)
    assert (code, out) == (0, "stored 5 configuration(s) for agent\n")
    assert store.methods() == ["manage_store_configs"]
    (tmp_path / "devices" / "campus" / "rtu2").write_text('{"broken": ')
    code, _, err = vctl_run(["config", "store-dir", "other", str(tmp_path)], capsys)
    assert code == EXIT_ERROR and "rtu2: line 1, column 12: invalid JSON" in err
    assert store.methods() == ["manage_store_configs"]
    code, _, err = vctl_run(["config", "store-dir", "agent", str(tmp_path / "config")], capsys)
    assert code == EXIT_USAGE and "is a file" in err
    code, _, err = vctl_run(["config", "store-dir", "agent", str(tmp_path / "missing")], capsys)
    assert code == EXIT_ERROR and "missing: not a directory" in err
    (tmp_path / "empty").mkdir()
    err = vctl_run(["config", "store-dir", "agent", str(tmp_path / "empty")], capsys)[2]
    assert "no files to store" in err


def editor(replace: str | None = None, code: int = 0, seen: list | None = None):
    """An editor function: records the file, optionally writes ``replace`` into it."""

    def run(argv: list[str]) -> int:
        if seen is not None:
            seen.append((argv, Path(argv[-1]).read_text()))
        if replace is not None:
            Path(argv[-1]).write_text(replace)
        return code

    return run


def runner(fake: FakeStore):
    return lambda work: work(config_cmd.ConfigStoreCalls(fake))


def test_edit_stores_the_edited_text_with_its_type() -> None:
    fake = FakeStore()
    fake.configs["a"] = {"reg": ("csv", "x\n1\n")}
    seen: list = []
    assert config_cmd.edit_config(runner(fake), "a", "reg", "my-editor --wait",
                                  run_editor=editor("x\n2\n", seen=seen))
    (argv, shown), = seen
    assert argv[:2] == ["my-editor", "--wait"] and argv[2].endswith(".csv") and shown == "x\n1\n"
    assert not Path(argv[2]).exists()
    assert fake.configs["a"]["reg"] == ("csv", "x\n2\n")


def test_edit_without_changes_stores_nothing_and_missing_needs_new() -> None:
    fake = FakeStore()
    fake.configs["a"] = {"config": ("json", "{}")}
    assert not config_cmd.edit_config(runner(fake), "a", "config", "ed", run_editor=editor())
    assert "manage_store" not in fake.methods()
    with pytest.raises(CommandError, match=r"no configuration 'new' for 'a' \(use --new to create it\)"):
        config_cmd.edit_config(runner(fake), "a", "new", "ed", run_editor=editor("[]"))
    assert config_cmd.edit_config(runner(fake), "a", "new", "ed", create=True, run_editor=editor("[]"))
    assert fake.configs["a"]["new"] == ("json", "[]")
    with pytest.raises(CommandError, match="exists; edit it without --new"):
        config_cmd.edit_config(runner(fake), "a", "new", "ed", create=True, run_editor=editor("[1]"))
    # a change of type alone is a change
    assert config_cmd.edit_config(runner(fake), "a", "new", "ed", "raw", run_editor=editor())
    assert fake.configs["a"]["new"] == ("raw", "[]")


def test_bad_edits_are_kept_and_named_and_a_failing_editor_stores_nothing() -> None:
    fake = FakeStore()
    fake.configs["a"] = {"config": ("json", '{"a": 1}')}
    with pytest.raises(CommandError) as info:
        config_cmd.edit_config(runner(fake), "a", "config", "ed", run_editor=editor('{"a": }'))
    message = info.value.format_message()
    assert message.startswith("config: line 1, column 7: invalid JSON")
    kept = Path(message.rsplit("your edits are in ", 1)[1])
    assert kept.read_text() == '{"a": }'
    kept.unlink()
    with pytest.raises(CommandError, match="exited with 3; nothing stored"):
        config_cmd.edit_config(runner(fake), "a", "config", "ed", run_editor=editor('{"a": 2}', code=3))
    with pytest.raises(CommandError, match="cannot run the editor"):
        config_cmd.edit_config(runner(fake), "a", "config", "/no/such/editor-program")
    assert fake.configs["a"]["config"] == ("json", '{"a": 1}')


def test_edit_command_uses_editor_from_the_environment(store, capsys, monkeypatch, tmp_path) -> None:
    script = tmp_path / "ed.py"
    script.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\np.write_text('[2]')\n")
    store.configs["a"] = {"config": ("json", "[1]")}
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{__import__('sys').executable} {script}")
    assert vctl_run(["config", "edit", "a", "config"], capsys) == (0, "", "")
    assert store.configs["a"]["config"] == ("json", "[2]")
    assert vctl_run(["config", "edit", "a", "config"], capsys) == (0, "", "no changes; nothing stored\n")
