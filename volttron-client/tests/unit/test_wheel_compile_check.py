"""``check_wheel_compiles``: an agent whose code does not compile is refused before install (issue 13
item 5), naming the file and line."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from volttron.client.packaging import WheelError, check_wheel_compiles


def _wheel(tmp_path: Path, files: dict[str, str]) -> Path:
    path = tmp_path / "vtest_agent-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("vtest_agent-0.1.0.dist-info/METADATA", "Name: vtest-agent\nVersion: 0.1.0\n")
    return path


def test_a_wheel_that_compiles_passes(tmp_path: Path) -> None:
    files = {"vtest_agent/__init__.py": "", "vtest_agent/agent.py": "def main():\n    return 0\n"}
    wheel = _wheel(tmp_path, files)
    assert check_wheel_compiles(wheel) == 2


@pytest.mark.parametrize(
    ("text", "where", "kind"),
    [
        ("def main():\n    return 0\n\ndef oops(:\n    pass\n", "vtest_agent/agent.py:4", "SyntaxError"),
        ("def main():\n    return 0\n      return 1\n", "vtest_agent/agent.py:3", "IndentationError"),
        ("x = 1\0\n", "vtest_agent/agent.py:", "SyntaxError"),
    ],
)
def test_the_first_file_that_does_not_compile_is_named_with_its_line(tmp_path: Path, text: str, where: str,
                                                                       kind: str) -> None:
    wheel = _wheel(tmp_path, {"vtest_agent/__init__.py": "", "vtest_agent/agent.py": text})
    with pytest.raises(WheelError) as caught:
        check_wheel_compiles(wheel)
    message = str(caught.value)
    assert where in message and kind in message and "\n" not in message, message


def test_a_corrupt_wheel_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad-0.1-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(WheelError, match="corrupt wheel"):
        check_wheel_compiles(bad)
