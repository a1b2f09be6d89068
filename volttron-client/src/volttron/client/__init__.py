"""Agent library of the modular VOLTTRON platform.

``volttron.client`` holds everything an agent or a tool needs to take part in a platform: the
:class:`~volttron.client.vip.agent.Agent` base class, the VOLTTRON Interconnect Protocol and its
subsystems, the message-bus connections, and the ``vctl``/``vcfg`` commands. It never imports
``volttron.server``.
"""

__version__ = "0.1.0"
