"""The router's RabbitMQ side (``--message-bus rmq``).

:mod:`.router` bridges the broker and the ZeroMQ router, :mod:`.users` keeps agents' broker users
and permissions in step with auth.json, :mod:`.topic_permissions` turns protected topics into broker
topic permissions, and :mod:`.link` handles what arrives over federation and shovel links.
"""
