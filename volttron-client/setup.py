"""The optional C extension; everything else is in pyproject.toml.

``volttron.client.messagebus._zmqframes`` moves whole ZeroMQ messages per call
(``messagebus/zmq_frames.py`` falls back to pyzmq without it). It is optional: when it cannot be
compiled (no C compiler, no Python headers) setuptools prints one ``building extension ... failed``
warning and the package builds and installs as pure Python. The source is written against the
limited API of Python 3.10 (it defines ``Py_LIMITED_API``), so one ``cp310-abi3`` wheel serves every
CPython >= 3.10 on its platform.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "volttron.client.messagebus._zmqframes",
            sources=["src/volttron/client/messagebus/_zmqframes.c"],
            libraries=["dl"],  # dlopen/dlsym: in libc since glibc 2.34, only in libdl before
            optional=True,
            py_limited_api=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
