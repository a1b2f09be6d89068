"""Agent installation and execution (the AIP): agent directories, installing into the server's
environment, launching and supervising agent processes.

The control service uses :class:`~volttron.server.aip.platform_agents.AIPPlatform`; the modules
below it each hold one concept:

- ``agent_dir``      one ``$VOLTTRON_HOME/agents/<identity>/`` directory
- ``agents_folder``  all of them: lookup by UUID/prefix/identity, default identities, locks, swaps
- ``environment``    pip and the protected platform packages
- ``installer``      the install and remove transactions
- ``auth_entries``   the hooks told about installs and removals (default: edit ``auth.json``)
- ``agent_users``    secure mode: one system user per agent, and the permissions it gets
- ``launcher``       an agent's command line and environment
- ``agent_output``   an agent's stdout/stderr into the platform log
- ``supervisor``     processes under gevent: start, stop, crash restarts
"""
