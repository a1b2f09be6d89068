"""The four wheels as a user gets them: built by scripts/build-wheels, installed into a fresh venv.

Slow (about a minute: a venv and the third-party dependencies from the package index), so it is
an integration test. Everything is built and installed once per module, into one venv.
"""

from __future__ import annotations

import email.message
import email.parser
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from trove_classifiers import classifiers as _trove_classifiers

REGISTERED = set(_trove_classifiers)
"""The classifiers PyPI accepts in an upload."""

# one worker builds the wheels and the venv once for every test here (scripts/test: --dist loadgroup)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("wheels")]

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "scripts" / "build-wheels"

# distribution name -> (the one top-level folder the wheel owns, its lower neighbour or None)
PACKAGES = {
    "volttron-utils": ("volttron/utils", None),
    "volttron-client": ("volttron/client", "volttron-utils"),
    "volttron-server": ("volttron/server", "volttron-client"),
    "volttron-listener-agent": ("volttron_listener_agent", "volttron-client"),
}

# The console scripts of the platform's wheels (the listener's is checked with its own wheel).
CONSOLE_SCRIPTS = ("volttron", "vctl", "vcfg")


def _run(args: list[str | os.PathLike[str]], *, timeout: float, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                            cwd=cwd, env=env, check=False)
    assert result.returncode == 0, (
        f"{' '.join(str(a) for a in args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


def _clean_env(tmp: Path) -> dict[str, str]:
    """The environment without anything pointing at the development tree or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["VOLTTRON_HOME"] = str(tmp / "volttron_home")
    return env


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheels and sdists of all four packages, built by the build script into a tmp dir."""
    out = tmp_path_factory.mktemp("dist")
    (out / "stale-0.0.1-py3-none-any.whl").write_bytes(b"left over from an earlier build")
    _run(["bash", BUILD_SCRIPT, out], timeout=600, cwd=ROOT)
    return out


def _wheel(dist: Path, name: str) -> Path:
    found = sorted(dist.glob(f"{name.replace('-', '_')}-*.whl"))
    assert len(found) == 1, f"expected one wheel of {name} in {dist}: {found}"
    return found[0]


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        [meta] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(zf.read(meta).decode("utf-8"))


def test_build_script_makes_a_wheel_and_sdist_of_each(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir())
    assert "stale-0.0.1-py3-none-any.whl" not in names, "old wheels in the output dir must be removed"
    assert len([n for n in names if n.endswith(".whl")]) == 4
    assert len([n for n in names if n.endswith(".tar.gz")]) == 4
    for name in PACKAGES:
        _wheel(dist, name)
        assert len(list(dist.glob(f"{name.replace('-', '_')}-*.tar.gz"))) == 1


def test_build_script_fails_loudly(tmp_path: Path) -> None:
    result = subprocess.run(["bash", BUILD_SCRIPT, tmp_path], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHON": str(tmp_path / "no-such-python")}, check=False)
    assert result.returncode != 0
    assert "build-wheels:" in result.stderr


@pytest.mark.parametrize("name", list(PACKAGES))
def test_wheel_owns_one_subpackage_and_no_namespace_init(dist: Path, name: str) -> None:
    owned, _ = PACKAGES[name]
    with zipfile.ZipFile(_wheel(dist, name)) as zf:
        # files only: auditwheel repair (volttron-client) writes folder entries too ("volttron/")
        files = [n for n in zf.namelist() if ".dist-info/" not in n and not n.endswith("/")]
    assert files, f"{name} wheel holds no code"
    directly_under_volttron = [f for f in files if f.startswith("volttron/") and f.count("/") == 1]
    assert not directly_under_volttron, f"volttron is a PEP 420 namespace: {directly_under_volttron}"
    strays = [f for f in files if not f.startswith(owned + "/")]
    assert not strays, f"{name} must hold only {owned}/: {strays}"
    assert f"{owned}/__init__.py" in files


@pytest.mark.parametrize("name", list(PACKAGES))
def test_sdist_has_no_namespace_init(dist: Path, name: str) -> None:
    [sdist] = dist.glob(f"{name.replace('-', '_')}-*.tar.gz")
    with tarfile.open(sdist) as tf:
        members = tf.getnames()
    assert not [m for m in members if m.endswith("src/volttron/__init__.py")]
    assert any(m.endswith("/pyproject.toml") for m in members)


@pytest.mark.parametrize("name", list(PACKAGES))
def test_wheel_metadata(dist: Path, name: str) -> None:
    meta = _metadata(_wheel(dist, name))
    assert _normalize(meta["Name"]) == name
    classifiers = set(meta.get_all("Classifier", []))
    assert classifiers <= REGISTERED, f"PyPI refuses an upload naming {sorted(classifiers - REGISTERED)}"
    assert not [c for c in classifiers if c.startswith("License ::")], "the license: an SPDX expression only"
    assert "volttron" in (meta.get("Keywords") or "").split(","), "how people find the package on an index"
    assert meta.get("License-Expression") or meta.get("License"), f"{name} declares no license"
    _, neighbour = PACKAGES[name]
    if neighbour is None:
        return
    parsed = [Requirement(r) for r in meta.get_all("Requires-Dist", [])]
    requirements = {_normalize(r.name): r for r in parsed}
    assert neighbour in requirements, f"{name} must depend on {neighbour}"
    spec = requirements[neighbour].specifier
    neighbour_version = Version(_metadata(_wheel(dist, neighbour))["Version"])
    assert neighbour_version in spec, f"{name} does not accept the {neighbour} built beside it"
    # compatible range: the next minor (0.x) or major (>=1) release is excluded
    if neighbour_version.major == 0:
        assert Version(f"0.{neighbour_version.minor + 1}.0") not in spec, f"{spec} has no upper bound"
    else:
        assert Version(f"{neighbour_version.major + 1}.0.0") not in spec, f"{spec} has no upper bound"


def test_client_wheel_holds_the_compiled_module(dist: Path) -> None:
    # volttron-client's optional C extension, built against the limited API of 3.10: one abi3 wheel for
    # every CPython >= 3.10, tagged manylinux by auditwheel (PyPI refuses linux_*); its source in the sdist
    wheel = _wheel(dist, "volttron-client")
    python_tag, abi_tag, platform_tag = wheel.name.removesuffix(".whl").split("-")[-3:]
    assert (python_tag, abi_tag) == ("cp310", "abi3"), wheel.name
    if sys.platform.startswith("linux"):
        assert platform_tag.startswith("manylinux_"), f"{wheel.name}: no manylinux tag (auditwheel)"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        wheel_info = zf.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
    compiled = [n for n in names if n.startswith("volttron/client/messagebus/_zmqframes.")
                and n.endswith((".abi3.so", ".pyd"))]
    assert compiled, f"{wheel.name} holds no compiled volttron.client.messagebus._zmqframes"
    assert "Root-Is-Purelib: false" in wheel_info
    [sdist] = dist.glob("volttron_client-*.tar.gz")
    with tarfile.open(sdist) as tf:
        assert any(m.endswith("src/volttron/client/messagebus/_zmqframes.c") for m in tf.getnames())


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, str]]:
    """A fresh venv with volttron-server and the listener installed from the built wheels.

    Returns the venv folder, pip's installation report and the environment to run it with.
    """
    tmp = tmp_path_factory.mktemp("venv")
    env = _clean_env(tmp)
    _run([sys.executable, "-m", "venv", tmp / "venv"], timeout=120, env=env)
    python = tmp / "venv" / "bin" / "python"
    report = tmp / "report.json"
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--report", report,
          "--find-links", dist, "volttron-server", "volttron-listener-agent"], timeout=900, cwd=tmp, env=env)
    return tmp / "venv", json.loads(report.read_text()), env


@pytest.mark.timeout(1200)
def test_installs_from_the_built_wheels(venv: tuple[Path, dict, dict[str, str]], dist: Path) -> None:
    _, report, _ = venv
    sources = {_normalize(item["metadata"]["name"]): item["download_info"]["url"]
               for item in report["install"]}
    for name in PACKAGES:
        assert name in sources, f"{name} was not installed"
        assert sources[name] == _wheel(dist, name).as_uri(), f"{name} came from {sources[name]}"


@pytest.mark.timeout(1200)
def test_packages_import_from_the_venv(venv: tuple[Path, dict, dict[str, str]]) -> None:
    folder, _, env = venv
    code = (
        "import json, volttron_listener_agent, volttron.utils, volttron.client, volttron.server\n"
        "import volttron.utils.keys, volttron.utils.logging, volttron.utils.certs\n"
        "modules = (volttron.utils, volttron.client, volttron.server, volttron_listener_agent)\n"
        "print(json.dumps([m.__file__ for m in modules]))\n"
    )
    result = _run([folder / "bin" / "python", "-c", code], timeout=120, cwd=folder.parent, env=env)
    for path in json.loads(result.stdout):
        assert Path(path).is_relative_to(folder), f"imported {path} from outside the fresh venv"


@pytest.mark.timeout(1200)
def test_compiled_module_imports_from_the_venv(venv: tuple[Path, dict, dict[str, str]]) -> None:
    folder, _, env = venv
    code = "import volttron.client.messagebus._zmqframes as m; print(m.__file__); m.bind\n"
    path = _run([folder / "bin" / "python", "-c", code], timeout=120, cwd=folder.parent, env=env).stdout
    assert Path(path.strip()).is_relative_to(folder), f"imported {path} from outside the fresh venv"


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_console_script_help(venv: tuple[Path, dict, dict[str, str]], script: str) -> None:
    folder, _, env = venv
    executable = folder / "bin" / script
    assert executable.exists(), f"console script {script} not installed"
    result = _run([executable, "--help"], timeout=120, cwd=folder.parent, env=env)
    assert "usage" in (result.stdout + result.stderr).lower()


DEVELOPER_GUIDE = ROOT / "docs" / "developer-guide.md"


def _clean_venv_block() -> str:
    """The developer guide's ``bash clean-venv`` block (issue 13 item 7)."""
    import re

    fence = re.compile(r"^```bash([^\n]*)\n(.*?)^```", re.S | re.M)
    found = fence.findall(DEVELOPER_GUIDE.read_text())
    (block,) = [body for tags, body in found if "clean-venv" in tags.split()]
    return block


@pytest.mark.timeout(1200)
def test_a_generated_agent_develops_in_a_clean_venv_from_the_built_wheels(
    dist: Path, tmp_path: Path
) -> None:
    # issue 13 item 7: outside the repository's venv, pip cannot find volttron-client on the public
    # index; the developer guide's --find-links path must work in a clean venv
    home = tmp_path / "home"
    home.mkdir()
    (home / "volttron-wheels").symlink_to(dist)  # built once by the fixture: the block skips its build
    env = _clean_env(tmp_path)
    env.update(HOME=str(home), VOLTTRON_REPO=str(ROOT), PIP_DISABLE_PIP_VERSION_CHECK="1")
    vctl = Path(sys.executable).with_name("vctl")
    _run([vctl, "create-agent", "volttron-solo-agent", "--author", "Jo Doe",
          "--author-email", "jo@example.com"], timeout=120, cwd=tmp_path, env=env)
    project = tmp_path / "volttron-solo-agent"
    result = _run(["bash", "-c", "set -euo pipefail\n" + _clean_venv_block()], timeout=1100, cwd=project,
                  env=env)
    assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout[-3000:]
    installed = _run([home / "demo-venv" / "bin" / "python", "-c",
                      "import volttron.client, volttron_solo_agent; print(volttron.client.__file__)"],
                     timeout=60, cwd=tmp_path, env=env).stdout
    assert str(home / "demo-venv") in installed, "volttron-client must come from the clean venv"
