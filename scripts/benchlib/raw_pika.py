"""The RabbitMQ baseline: raw pika clients through a topic exchange, no VIP, no gevent.

What the platform's RabbitMQ agents do, with nothing of the platform: (a) one publisher process
publishes to a topic exchange, asynchronously, every publish confirmed by the broker and at most
:data:`WINDOW` awaiting confirmation (as the platform's client does), and one consumer process
counts the deliveries of its queue bound to that key; (c) one message at a time from a driver to a
responder, which notes when it arrived; (d) sequential request/reply: the request through the
topic exchange to the responder's queue, the reply to the driver's exclusive reply queue through
the default exchange, matched by correlation id.

Every endpoint runs in a process of its own (forked by :mod:`main`) and reports on one
``multiprocessing`` queue as :mod:`vip_workers` do: ``("ready", name)``, ``("error", name, reason)``
and its result. Every wait has a deadline; every loop is bounded in count and in time.
"""

from __future__ import annotations

import collections
import json
import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

from stats import cpu_by_thread

from volttron.client.messagebus.rmq_amqp import MAX_UNCONFIRMED

EXCHANGE = "bench.raw"
THROUGHPUT_KEY = "bench.tp"
PING_KEY = "bench.lat.ping"
PONG_KEY = "bench.lat.pong"
REQUEST_KEY = "bench.rpc.echo"
WINDOW = MAX_UNCONFIRMED
"""Publishes awaiting confirmation before the publisher waits: the platform client's limit."""
BATCH = 200
"""Publishes per turn of the publisher's I/O loop, so confirmations are read between batches."""
PAYLOAD = b'{"bus": "", "headers": {}, "message": 42}'


@dataclass(frozen=True)
class Broker:
    """Where the raw clients connect: the run's vhost, with a user of their own."""

    host: str
    port: int
    vhost: str
    user: str
    password: str

    def parameters(self) -> Any:
        import pika

        return pika.ConnectionParameters(host=self.host, port=self.port, virtual_host=self.vhost,
                                         credentials=pika.PlainCredentials(self.user, self.password),
                                         heartbeat=0, connection_attempts=3, retry_delay=0.5)


def vip_properties(user: str) -> Any:
    """The properties the platform's client gives every publish (``rmq_wire``): for the diagnostic run."""
    import pika

    key = f"__pubsub__.{user}.{THROUGHPUT_KEY}.#"
    return pika.BasicProperties(app_id=f"{user}.bench.pub", user_id=user, type="pubsub",
                                content_type="application/json",
                                message_id="8c3f2b1e-5d7a-4c2e-9f1a-0b6d4e8a7c21",
                                headers={"recipient": key, "proto": "VIP", "user": "bench.pub",
                                         "topic": "bench/tp", "bus": ""})


def _used_since(before: tuple[float, float]) -> tuple[float, float]:
    after = cpu_by_thread()
    return after[0] - before[0], after[1] - before[1]


def _fail(out: mp.Queue, name: str, exc: BaseException) -> None:
    out.put(("error", name, f"{type(exc).__name__}: {exc}"))


def _channel(broker: Broker) -> tuple[Any, Any]:
    import pika

    connection = pika.BlockingConnection(broker.parameters())
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, "topic", auto_delete=False)
    return connection, channel


def _bound_queue(channel: Any, *keys: str) -> str:
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    for key in keys:
        channel.queue_bind(queue, EXCHANGE, routing_key=key)
    return queue


def _wait_event(connection: Any, event: Any, timeout: float) -> bool:
    """Wait for a multiprocessing event while the connection keeps serving the broker."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() >= deadline:
            return False
        connection.process_data_events(time_limit=0.005)
    return True


# -- (a): throughput --------------------------------------------------------------------------------

def subscriber(broker: Broker, expected: int, published: Any, out: mp.Queue, timeout: float,
               quiet: float = 1.0) -> None:
    """Count deliveries of :data:`THROUGHPUT_KEY` until ``expected`` arrived, or the broker went quiet."""
    name = "raw.sub"
    try:
        connection, channel = _channel(broker)
        state = {"count": 0, "first": 0.0, "last": 0.0}

        def on_message(_channel: Any, _method: Any, _properties: Any, _body: bytes) -> None:
            now = time.perf_counter()
            if not state["count"]:
                state["first"] = now
            state["count"] += 1
            state["last"] = now

        channel.basic_consume(_bound_queue(channel, THROUGHPUT_KEY), on_message, auto_ack=True)
        cpu = _used_since((0.0, 0.0))
        out.put(("ready", name))
        deadline = time.monotonic() + timeout
        while state["count"] < expected and time.monotonic() < deadline:
            if published.is_set() and time.perf_counter() - max(state["last"], 0.0) > quiet:
                break
            connection.process_data_events(time_limit=0.05)
        out.put(("sub", name, state["count"], state["first"], state["last"], _used_since(cpu)))
        connection.close()
    except BaseException as exc:
        _fail(out, name, exc)


def publisher(broker: Broker, messages: int, go: Any, published: Any, out: mp.Queue,
              timeout: float, vip_shaped: bool = False) -> None:
    """Publish ``messages`` with publisher confirms, never more than :data:`WINDOW` unconfirmed.

    Reports like :func:`vip_workers.publisher`: the start and end of publishing, how many publishes
    were never confirmed (the broker refused them or time ran out) and the CPU used. With
    ``vip_shaped`` every publish carries the properties a VIP publish has (:func:`vip_properties`),
    to show what they alone cost.
    """
    import pika

    name = "raw.pub"
    properties = vip_properties(broker.user) if vip_shaped else None
    state: dict[str, Any] = {"sent": 0, "nacked": 0, "start": 0.0, "sent_at": 0.0, "cpu": (0.0, 0.0),
                             "reported": False, "blocked": False}
    outstanding: collections.deque[int] = collections.deque()
    deadline = time.monotonic() + timeout

    try:
        def finish(error: str | None = None) -> None:
            if state["reported"]:
                return
            state["reported"] = True
            published.set()
            if error:
                out.put(("error", name, error))
            else:
                out.put(("pub", name, state["start"], state["sent_at"], len(outstanding) + state["nacked"], 0,
                         _used_since(state["cpu"])))
            if connection.is_open:
                connection.close()  # on_close stops the loop
            else:
                connection.ioloop.stop()

        def on_open(conn: Any) -> None:
            conn.channel(on_open_callback=on_channel)

        def on_channel(channel: Any) -> None:
            state["channel"] = channel
            channel.exchange_declare(EXCHANGE, "topic", auto_delete=False,
                                     callback=lambda _f: channel.confirm_delivery(on_confirm, on_confirming))

        def on_confirming(_frame: Any) -> None:
            out.put(("ready", name))
            wait_for_go()

        def wait_for_go() -> None:
            if go.is_set():
                state["cpu"] = _used_since((0.0, 0.0))
                state["start"] = time.perf_counter()
                publish_some()
            elif time.monotonic() > deadline:
                finish("never told to start")
            else:
                connection.ioloop.call_later(0.005, wait_for_go)

        def publish_some() -> None:
            channel = state["channel"]
            room = min(BATCH, messages - state["sent"], WINDOW - len(outstanding))
            for _ in range(room):
                channel.basic_publish(EXCHANGE, THROUGHPUT_KEY, PAYLOAD, properties)
                state["sent"] += 1
                outstanding.append(state["sent"])
            if state["sent"] == messages:
                state["sent_at"] = time.perf_counter()
            elif room:
                connection.ioloop.call_later(0, publish_some)
            else:
                state["blocked"] = True  # the window is full: on_confirm publishes more

        def on_confirm(frame: Any) -> None:
            method = frame.method
            tag = method.delivery_tag
            if method.multiple:
                while outstanding and outstanding[0] <= tag:
                    outstanding.popleft()
            elif outstanding and outstanding[0] == tag:
                outstanding.popleft()
            else:
                outstanding.remove(tag)
            if isinstance(method, pika.spec.Basic.Nack):
                state["nacked"] += 1
            if state["sent"] == messages and not outstanding:
                finish()
            elif state["blocked"] and len(outstanding) <= WINDOW - BATCH:
                state["blocked"] = False
                publish_some()

        def give_up() -> None:
            finish()  # reports what was not confirmed by now

        connection = pika.SelectConnection(
            broker.parameters(), on_open_callback=on_open,
            on_open_error_callback=lambda _c, exc: finish(f"cannot connect: {exc}"),
            on_close_callback=lambda _c, _reason: connection.ioloop.stop())
        connection.ioloop.call_later(timeout, give_up)
        connection.ioloop.start()  # returns when the connection has closed
        if not state["reported"]:
            out.put(("error", name, "the connection closed before publishing finished"))
    except BaseException as exc:
        published.set()
        _fail(out, name, exc)


# -- (c), (d): latency and request/reply ------------------------------------------------------------

def responder(broker: Broker, stop: Any, out: mp.Queue, timeout: float) -> None:
    """Answer pings (publishing when each arrived) and echo requests to their reply queue."""
    import pika

    name = "raw.echo"
    try:
        connection, channel = _channel(broker)

        def on_ping(_channel: Any, _method: Any, _properties: Any, body: bytes) -> None:
            arrived = time.perf_counter()
            number, sent = json.loads(body)
            channel.basic_publish(EXCHANGE, PONG_KEY, json.dumps([number, arrived - sent]).encode())

        def on_request(_channel: Any, _method: Any, properties: Any, body: bytes) -> None:
            channel.basic_publish("", properties.reply_to, body,
                                  pika.BasicProperties(correlation_id=properties.correlation_id))

        channel.basic_consume(_bound_queue(channel, PING_KEY), on_ping, auto_ack=True)
        channel.basic_consume(_bound_queue(channel, REQUEST_KEY), on_request, auto_ack=True)
        out.put(("ready", name))
        _wait_event(connection, stop, timeout)
        connection.close()
    except BaseException as exc:
        _fail(out, name, exc)


def driver(broker: Broker, samples: int, go: Any, out: mp.Queue, timeout: float) -> None:
    """One publish at a time to the responder (one-way latency), then sequential request/reply."""
    import pika

    name = "raw.driver"
    try:
        connection, channel = _channel(broker)
        answers: dict[str, Any] = {}

        def on_pong(_channel: Any, _method: Any, _properties: Any, body: bytes) -> None:
            number, latency = json.loads(body)
            answers[str(number)] = latency

        def on_reply(_channel: Any, _method: Any, properties: Any, body: bytes) -> None:
            answers[properties.correlation_id] = body

        channel.basic_consume(_bound_queue(channel, PONG_KEY), on_pong, auto_ack=True)
        reply_queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.basic_consume(reply_queue, on_reply, auto_ack=True)
        out.put(("ready", name))
        if not _wait_event(connection, go, timeout):
            raise TimeoutError("never told to start")
        deadline = time.monotonic() + timeout

        def answer(key: str) -> Any:
            until = min(deadline, time.monotonic() + 5)
            while key not in answers:
                if time.monotonic() > until:
                    raise TimeoutError(f"no answer to {key} within 5 s")
                connection.process_data_events(time_limit=1)
            return answers.pop(key)

        one_way = []
        for i in range(samples + samples // 10):  # the first tenth warms up and is not counted
            if time.monotonic() > deadline:
                break
            channel.basic_publish(EXCHANGE, PING_KEY, json.dumps([i, time.perf_counter()]).encode())
            latency = answer(str(i))
            if i >= samples // 10:
                one_way.append(latency)
        round_trip = []
        for i in range(samples + samples // 10):
            if time.monotonic() > deadline:
                break
            request = json.dumps({"method": "echo", "params": [i], "id": f"c{i}"}).encode()
            t0 = time.perf_counter()
            channel.basic_publish(EXCHANGE, REQUEST_KEY, request,
                                  pika.BasicProperties(reply_to=reply_queue, correlation_id=f"c{i}"))
            if answer(f"c{i}") != request:
                raise AssertionError("the echo answered something else")
            if i >= samples // 10:
                round_trip.append(time.perf_counter() - t0)
        out.put(("driver", name, one_way, round_trip))
        connection.close()
    except BaseException as exc:
        _fail(out, name, exc)
