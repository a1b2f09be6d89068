"""Shared utilities of the modular VOLTTRON platform.

Standard library, PyYAML and cryptography only: this package never imports gevent, ZeroMQ, pika
or another ``volttron`` package, so both the client and the server can depend on it.
"""

__version__ = "0.1.0"
