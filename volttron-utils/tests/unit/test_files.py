"""Atomic writes, keeping corrupt files aside, and reading JSON files."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from volttron.utils import files
from volttron.utils.errors import CorruptFileError, VolttronError
from volttron.utils.files import FileLock, atomic_write, move_aside, read_json_file, write_json_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_bytes_and_text(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    atomic_write(target, b"\x00\xffdata")
    assert target.read_bytes() == b"\x00\xffdata"
    atomic_write(target, "h\u00e9llo \u20ac")
    assert target.read_bytes() == "h\u00e9llo \u20ac".encode()
    assert _mode(target) == 0o644
    assert _leftovers(tmp_path) == []


def test_atomic_write_mode_applied_and_replaces_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    atomic_write(target, "x", mode=0o600)
    assert _mode(target) == 0o600
    atomic_write(target, "y", mode=0o640)
    assert _mode(target) == 0o640
    assert target.read_text() == "y"


def test_mode_is_set_before_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary file already has the final mode when it takes the target's name."""
    seen: list[int] = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", spy)
    atomic_write(tmp_path / "k", "s", mode=0o600)
    assert seen == [0o600]


def test_atomic_write_failure_leaves_old_content_and_no_temp(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_write_failure_on_rename(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    (target / "child").write_text("x")
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.is_dir()
    assert _leftovers(tmp_path) == []


def test_atomic_write_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "nope" / "f", "x")


def test_atomic_write_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "once"
    atomic_write(target, "first", overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write(target, "second", overwrite=False)
    assert target.read_text() == "first"
    assert _leftovers(tmp_path) == []


def test_move_aside_names_and_never_overwrites(tmp_path: Path) -> None:
    kept = []
    for content in ("one", "two", "three"):
        bad = tmp_path / "auth.json"
        bad.write_text(content)
        kept.append(move_aside(bad))
        assert not bad.exists()
    assert len(set(kept)) == 3
    assert [p.read_text() for p in kept] == ["one", "two", "three"]
    for path in kept:
        assert path.parent == tmp_path
        assert path.name.startswith("auth.json.corrupt-")
        assert "Z" in path.name


def test_move_aside_same_timestamp_gets_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FrozenDatetime:
        @staticmethod
        def now(tz):
            from datetime import datetime
            return datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=tz)

    monkeypatch.setattr(files, "datetime", FrozenDatetime)
    first = tmp_path / "x"
    first.write_text("1")
    a = move_aside(first, reason="old")
    first.write_text("2")
    b = move_aside(first, reason="old")
    assert a.name == "x.old-20240102T030405.000006Z"
    assert b.name == "x.old-20240102T030405.000006Z-1"
    assert (a.read_text(), b.read_text()) == ("1", "2")


def test_move_aside_rejects_odd_reason(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ValueError):
        move_aside(f, reason="../escape")
    assert f.exists()


def test_move_aside_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        move_aside(tmp_path / "absent")


def test_read_json_file_roundtrip_and_default(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    assert read_json_file(path, default={}) == {}
    assert read_json_file(path, default=None) is None
    with pytest.raises(FileNotFoundError):
        read_json_file(path)
    write_json_file(path, {"a": [1, 2], "b": "\u00e9"})
    assert read_json_file(path, expect=dict) == {"a": [1, 2], "b": "\u00e9"}
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": "\u00e9"}


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"a": ', "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[" * 100000, "not valid JSON"),
    ],
)
def test_read_json_file_corrupt_is_moved_aside(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "store.json"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError) as info:
        read_json_file(path, default={})
    err = info.value
    assert isinstance(err, VolttronError)
    assert problem in str(err)
    assert str(path) in str(err)
    assert err.path == str(path)
    assert err.kept_as is not None and err.kept_as in str(err)
    assert Path(err.kept_as).read_bytes() == content
    assert not path.exists()


def test_read_json_file_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("[1, 2]")
    with pytest.raises(CorruptFileError, match="holds a JSON list, expected dict"):
        read_json_file(path, expect=dict)
    path.write_text('"text"')
    with pytest.raises(CorruptFileError, match="expected dict or list"):
        read_json_file(path, expect=(dict, list))


def test_read_json_file_corrupt_kept_in_place(tmp_path: Path) -> None:
    path = tmp_path / "keystore"
    path.write_text("{broken")
    with pytest.raises(CorruptFileError) as info:
        read_json_file(path, move_corrupt=False)
    assert info.value.kept_as is None
    assert path.read_text() == "{broken"
    assert [p.name for p in tmp_path.iterdir()] == ["keystore"]


def test_write_json_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "private.json"
    write_json_file(path, [1], mode=0o600)
    assert _mode(path) == 0o600
    assert read_json_file(path) == [1]


class TestFileLock:
    def test_threads_exclude_each_other(self, tmp_path: Path) -> None:
        held = FileLock(tmp_path / "x.lock")
        assert held.acquire()
        results: list[bool] = []
        thread = threading.Thread(target=lambda: results.append(FileLock(tmp_path / "x.lock").acquire(0.1)))
        thread.start()
        thread.join(10)
        held.release()
        assert results == [False]
        other = FileLock(tmp_path / "x.lock")
        assert other.acquire(1.0)
        other.release()

    def test_context_manager(self, tmp_path: Path) -> None:
        with FileLock(tmp_path / "y.lock") as lock:
            assert lock.held
            with pytest.raises(BlockingIOError), FileLock(tmp_path / "y.lock"):
                pass
        assert not lock.held

    def test_shared_holders_coexist_and_keep_an_exclusive_one_out(self, tmp_path: Path) -> None:
        one, two = FileLock(tmp_path / "z.lock", shared=True), FileLock(tmp_path / "z.lock", shared=True)
        assert one.acquire() and two.acquire()
        assert not FileLock(tmp_path / "z.lock").acquire(0.1)
        one.release()
        two.release()
        with pytest.raises(TimeoutError, match="the broker"), FileLock(tmp_path / "z.lock"):
            FileLock(tmp_path / "z.lock", shared=True).hold(0.1, "the broker")
