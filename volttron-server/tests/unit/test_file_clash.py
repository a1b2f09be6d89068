"""Which files a wheel would write, and whose they are (issue 12 item 4), on hand-made wheels."""

from __future__ import annotations

import zipfile
from pathlib import Path

from volttron.server.aip.file_clash import InstalledFiles, find_clashes, wheel_files


def wheel(folder: Path, name: str, members: dict[str, str], scripts: tuple[str, ...] = ()) -> Path:
    stem = name.replace("-", "_")
    info = f"{stem}-1.0.dist-info"
    members = {
        **members,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\n" + "".join(f"{s} = m:main\n" for s in scripts),
        f"{info}/RECORD": "",
    }
    path = folder / f"{stem}-1.0-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    return path


def environment(root: Path, owners: dict[str, str], roots: dict[str, str] | None = None) -> InstalledFiles:
    paths = {"purelib": str(root / "site"), "platlib": str(root / "site"), "scripts": str(root / "bin"),
             "data": str(root)}
    owned = {str(root / k): v for k, v in owners.items()}
    return InstalledFiles(paths=paths, owners=owned, roots=roots or {})


def test_members_data_schemes_and_console_scripts_are_the_files_written(tmp_path: Path) -> None:
    path = wheel(tmp_path, "demo", {"demo/__init__.py": "", "demo-1.0.data/scripts/tool": "",
                                    "demo-1.0.data/data/share/x.txt": "", "demo-1.0.data/headers/h.h": ""},
                 scripts=("demo-cli",))
    name, files = wheel_files(path)
    assert name == "demo"
    assert ("purelib", "demo/__init__.py") in files and ("scripts", "tool") in files
    assert ("data", "share/x.txt") in files and ("scripts", "demo-cli") in files
    assert not any("h.h" in relative for _, relative in files)


def test_a_file_of_another_distribution_clashes_naming_both_owners(tmp_path: Path) -> None:
    installed = environment(tmp_path, {"site/volttron/client/__init__.py": "volttron-client",
                                       "bin/vctl": "volttron-client"})
    path = wheel(tmp_path / "w", "volttron-core", {"volttron/client/__init__.py": ""}, scripts=("vctl",))
    clashes = find_clashes([path], installed)
    assert {(Path(c.path).name, c.new_owner, c.old_owner) for c in clashes} == {
        ("__init__.py", "volttron-core", "volttron-client"), ("vctl", "volttron-core", "volttron-client")}


def test_a_new_version_of_the_owner_itself_is_no_clash(tmp_path: Path) -> None:
    installed = environment(tmp_path, {"site/demo/__init__.py": "Demo"})
    assert find_clashes([wheel(tmp_path / "w", "demo", {"demo/__init__.py": ""})], installed) == []


def test_a_development_install_owns_what_its_pth_folder_holds(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout" / "src"
    (checkout / "volttron" / "client").mkdir(parents=True)
    (checkout / "volttron" / "client" / "__init__.py").write_text("")
    installed = environment(tmp_path, {}, {str(checkout): "volttron-client"})
    clashes = find_clashes([wheel(tmp_path / "w", "shadow", {"volttron/client/__init__.py": ""})], installed)
    assert len(clashes) == 1 and clashes[0].old_owner.startswith("volttron-client (development install")


def test_two_new_wheels_writing_one_file_clash_with_each_other(tmp_path: Path) -> None:
    first = wheel(tmp_path / "a", "first", {"shared/x.py": ""})
    second = wheel(tmp_path / "b", "second", {"shared/x.py": ""})
    clashes = find_clashes([first, second], environment(tmp_path, {}))
    assert [(c.new_owner, c.old_owner) for c in clashes] == [("second", "first")]


def test_an_init_in_a_shared_namespace_package_clashes(tmp_path: Path) -> None:
    # volttron/ is a namespace package: a volttron/__init__.py would hide volttron.client
    checkout = tmp_path / "checkout" / "src"
    (checkout / "volttron" / "client").mkdir(parents=True)
    installed = environment(tmp_path, {"site/volttron/extra/x.py": "volttron-extra"},
                            {str(checkout): "volttron-client"})
    (tmp_path / "site" / "volttron" / "extra").mkdir(parents=True)
    clashes = find_clashes([wheel(tmp_path / "w", "hider", {"volttron/__init__.py": ""})], installed)
    assert [c.old_owner for c in clashes] == ["volttron-extra (namespace package volttron)"]
    checkout_only = environment(tmp_path / "other", {}, {str(checkout): "volttron-client"})
    clashes = find_clashes([wheel(tmp_path / "w2", "hider", {"volttron/__init__.py": ""})], checkout_only)
    assert [c.old_owner for c in clashes] == [
        "volttron-client (namespace package volttron, development install)"]
    own = environment(tmp_path, {"site/volttron/extra/x.py": "volttron-extra"})
    assert find_clashes([wheel(tmp_path / "w3", "volttron-extra", {"volttron/__init__.py": ""})], own) == []
