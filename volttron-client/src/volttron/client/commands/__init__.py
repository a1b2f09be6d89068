"""The ``vctl`` and ``vcfg`` command lines.

One module per noun. Click callbacks parse arguments and print; the work is done by plain
functions that tests call directly. Sub-command modules are imported only when their command runs,
so ``vctl --help`` imports neither gevent nor ZeroMQ.
"""
