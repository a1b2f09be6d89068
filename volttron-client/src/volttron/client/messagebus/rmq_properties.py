"""The AMQP properties of a VIP message, encoded with what is constant per connection encoded once.

Every VIP message carries the same properties (:mod:`~volttron.client.messagebus.rmq_wire`):
``content_type``, a ``headers`` table of text, ``message_id``, ``type``, ``user_id`` and ``app_id``;
of these, ``content_type``, ``user_id`` and ``app_id`` never change on one connection. pika's
``BasicProperties.encode`` goes through all fourteen properties and encodes each table entry through
a chain of type checks, on every publish: in a profile of a publishing agent it was the largest
piece of the client's own work per message. :class:`PropertiesEncoder` produces the same bytes
(a test compares them with pika's for every shape used) with the constant parts made once, and the
headers table remembered: a peer sends to few recipients, on few topics, so only the message id
changes from one message to the next.

pika takes the result where it takes a ``BasicProperties``: its content header frame asks the
properties object only for ``INDEX`` (the AMQP class, ``basic``) and ``encode()`` (the encoded
pieces), so :class:`EncodedProperties` offers those two. Nothing here imports pika.
"""

from __future__ import annotations

from collections.abc import Iterable

BASIC_CLASS = 60
"""AMQP class id of ``basic``: what pika calls the ``INDEX`` of ``BasicProperties``."""
# property flags of the basic class (AMQP 0-9-1 §4.2.6.1, in the order they are encoded)
_CONTENT_TYPE = 1 << 15
_HEADERS = 1 << 13
_MESSAGE_ID = 1 << 7
_TYPE = 1 << 5
_USER_ID = 1 << 4
_APP_ID = 1 << 3
TABLES_KEPT = 256
"""Encoded headers tables remembered per connection (all are forgotten when there are more)."""


class EncodedProperties:
    """AMQP basic properties already encoded, as pika's content header frame takes them."""

    __slots__ = ("encoded",)
    INDEX = BASIC_CLASS

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded

    def encode(self) -> list[bytes]:
        """The encoded pieces (pika inserts the frame's size in front: a new list each time)."""
        return [self.encoded]


class PropertiesEncoder:
    """Encodes the properties of the VIP messages one connection sends (see the module docstring).

    Raises ValueError for a text longer than AMQP allows (255 bytes for a short string), where pika
    raises ``ShortStringTooLong``.
    """

    def __init__(self, app_id: str | None, user_id: str | None, content_type: str | None) -> None:
        flags = _HEADERS | _TYPE
        head = b""
        if content_type is not None:
            flags |= _CONTENT_TYPE
            head = short_string(content_type)
        tail = b""
        if user_id is not None:
            flags |= _USER_ID
            tail += short_string(user_id)
        if app_id is not None:
            flags |= _APP_ID
            tail += short_string(app_id)
        self._head = {False: flags.to_bytes(2, "big") + head,
                      True: (flags | _MESSAGE_ID).to_bytes(2, "big") + head}
        self._tail = tail
        self._types: dict[str, bytes] = {}
        self._keys: dict[str, bytes] = {}
        self._tables: dict[tuple[tuple[str, str], ...], bytes] = {}

    def encode(self, headers: Iterable[tuple[str, str]], message_id: str | None,
               type_: str) -> EncodedProperties:
        """The properties with the ``headers`` table (text values, in this order), ``message_id``
        (omitted when None) and ``type``."""
        entries = tuple(headers)
        table = self._tables.get(entries)
        if table is None:
            table = self._table(entries)
            if len(self._tables) >= TABLES_KEPT:
                self._tables.clear()
            self._tables[entries] = table
        return self.encode_with_table(table, message_id, type_)

    def headers_table(self, headers: Iterable[tuple[str, str]]) -> bytes:
        """The encoded ``headers`` table (text values, in this order), for :meth:`encode_with_table`;
        not remembered here (the caller keeps the tables it reuses, under a cheaper key)."""
        return self._table(headers)

    def encode_with_table(self, table: bytes, message_id: str | None, type_: str) -> EncodedProperties:
        """The properties with a ``headers`` table :meth:`headers_table` encoded, ``message_id`` (omitted
        when None) and ``type``."""
        typed = self._types.get(type_)
        if typed is None:
            typed = self._types[type_] = short_string(type_)
        if message_id is None:
            return EncodedProperties(b"".join((self._head[False], table, typed, self._tail)))
        return EncodedProperties(b"".join((self._head[True], table, short_string(message_id), typed,
                                           self._tail)))

    def _table(self, entries: Iterable[tuple[str, str]]) -> bytes:
        """The headers table with its size."""
        names = self._keys
        pieces: list[bytes] = []
        for key, value in entries:
            name = names.get(key) or self._name(key)
            data = value.encode("utf-8")
            pieces += (name, len(data).to_bytes(4, "big"), data)
        encoded = b"".join(pieces)
        return len(encoded).to_bytes(4, "big") + encoded

    def _name(self, key: str) -> bytes:
        """A table entry's name and the type of its value (a long string), as encoded."""
        name = short_string(key) + b"S"
        if len(self._keys) < 64:  # the few names VIP uses; anything else is encoded each time
            self._keys[key] = name
        return name


def short_string(text: str) -> bytes:
    """``text`` as an AMQP short string (a length byte, then UTF-8); ValueError beyond 255 bytes."""
    data = text.encode("utf-8")
    if len(data) > 255:
        raise ValueError(f"an AMQP short string holds at most 255 bytes: {text[:40]!r}... has {len(data)}")
    return bytes((len(data),)) + data
