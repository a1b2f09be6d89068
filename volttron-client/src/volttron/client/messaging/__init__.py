"""Topics, header names and health status objects shared by agents (``volttron.platform.messaging``)."""
