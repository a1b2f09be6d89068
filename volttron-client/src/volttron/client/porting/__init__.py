"""Port an agent written for the monolithic VOLTTRON to the modular packages (docs/protocol.md §7.2).

:func:`port_source` rewrites the ``volttron.platform`` imports of one module; :func:`port_project`
does a whole agent folder and turns its ``setup.py`` into a suggested ``pyproject.toml``.

Only the spans of import statements and of ``utils.<name>`` uses are replaced, located with
:mod:`ast`, so the rest of the file (formatting, comments, strings) stays byte for byte as it was.
An import whose names all move to one module keeps its layout and only the module name changes.
Names with no equivalent here are reported (``file:line: name: why``), never guessed::

    from volttron.platform.vip.agent import Agent   ->  from volttron.client.vip.agent import Agent
    from volttron.platform.agent import utils       ->  from volttron.client.runner import vip_main
                                                        from volttron.utils.config import load_config
    utils.vip_main(MyAgent) / utils.load_config(p)  ->  vip_main(MyAgent) / load_config(p)
"""

from volttron.client.porting.imports import Change, PortResult, Problem, port_source
from volttron.client.porting.mapping import HINTS, MODULE_MAP, NAME_MAP, PortingError, map_module, map_name
from volttron.client.porting.project import ProjectReport, port_project
from volttron.client.porting.setup_py import SetupInfo, read_setup, suggest_pyproject

__all__ = [
    "HINTS",
    "MODULE_MAP",
    "NAME_MAP",
    "Change",
    "PortResult",
    "PortingError",
    "Problem",
    "ProjectReport",
    "SetupInfo",
    "map_module",
    "map_name",
    "port_project",
    "port_source",
    "read_setup",
    "suggest_pyproject",
]
