"""Message-bus connections behind one small interface.

:mod:`volttron.client.messagebus.base` defines :class:`~.base.Message`, the abstract
:class:`~.base.Connection` and :func:`~.base.connection_class`, which imports a back-end by name
(``"zmq"``, ``"rmq"``) only when it is asked for. Nothing here is imported by ``import
volttron.client``.
"""
