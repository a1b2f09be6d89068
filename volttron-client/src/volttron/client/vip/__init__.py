"""The VOLTTRON Interconnect Protocol: the agent side (``volttron.client.vip.agent``)."""
