"""Time an isolated agent install (issue 12 item 2): a new environment plus a small agent, uv against pip.

Usage: .venv/bin/python scripts/benchlib/isolated_install.py [--rounds N]

Each round makes a fresh environment in a temporary home with the platform's own code
(:class:`volttron.server.aip.isolation.AgentEnvironments`) and installs, warm cache (a first
untimed round fills it):

* ``one-file``: an agent of one module and no requirements;
* ``published`` (with ``--published``): the published VOLTTRON's listener 2.0.0rc3 with
  volttron-core, volttron-lib-zmq and their requirements;
* ``listener``: this repository's listener, which brings the platform's volttron-client and
  volttron-utils (copied editable installs here) and their requirements (gevent, pyzmq, ...).

and prints the median and worst seconds per tool. docs/performance.md quotes the figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from volttron.client.packaging import build_wheel
from volttron.server.aip.environment import PipOptions, PythonEnvironment
from volttron.server.aip.isolation import AgentEnvironments, find_uv

ROOT = Path(__file__).resolve().parents[2]


def one_file_wheel(folder: Path) -> Path:
    project = folder / "onefile"
    (project / "vbench_onefile").mkdir(parents=True)
    (project / "vbench_onefile" / "__init__.py").write_text("def main():\n    return 0\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["flit_core>=3.4,<5"]\nbuild-backend = "flit_core.buildapi"\n'
        '[project]\nname = "vbench-onefile"\nversion = "0.1.0"\ndescription = "x"\n'
        '[project.scripts]\nvbench-onefile = "vbench_onefile:main"\n'
    )
    return build_wheel(project, folder / "wheels", timeout=300)


def one_round(tool: str | None, wheel: Path) -> float:
    with tempfile.TemporaryDirectory(prefix="vbench-iso-") as home:
        environments = AgentEnvironments(Path(home), PythonEnvironment(), PipOptions(), uv=tool or "")
        started = time.monotonic()
        environments.create("agent")
        environments.install("agent", wheel, pre=True)
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--published", action="store_true",
                        help="also the published VOLTTRON's listener 2.0.0rc3 (with volttron-core)")
    args = parser.parse_args()
    uv = find_uv()
    if uv is None:
        print("uv is not installed beside the platform", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="vbench-wheels-") as tmp:
        listener = build_wheel(ROOT / "volttron-listener-agent", Path(tmp) / "wheels", timeout=300)
        wheels = {"one-file": one_file_wheel(Path(tmp)), "listener": listener}
        if args.published:
            wheels["published"] = PythonEnvironment().fetch_wheel(
                "volttron-listener==2.0.0rc3", Path(tmp) / "published", PipOptions(), pre=True
            )
        for agent, wheel in wheels.items():
            for name, tool in (("uv", uv), ("pip", None)):
                one_round(tool, wheel)  # warms the cache
                times = [one_round(tool, wheel) for _ in range(args.rounds)]
                median = statistics.median(times)
                print(f"{agent:9} {name:4} median {median:6.2f} s  worst {max(times):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
