"""Broker administration against the real local broker: topic permissions, policies, parameters."""

from __future__ import annotations

import pytest

from volttron.client.messagebus.rmq_admin import BrokerAdminError, TopicPermissions
from volttron.client.messagebus.rmq_testing import broker_instance

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


@pytest.fixture
def broker():
    with broker_instance("admin") as instance:
        instance.admin.add_vhost(instance.vhost)
        yield instance


def test_topic_permissions_are_set_listed_and_cleared(broker) -> None:
    admin, vhost = broker.admin, broker.vhost
    user = f"{broker.instance}.topics"
    admin.put_user(user, "pw", ["volttron-agent"])
    admin.set_topic_permissions(vhost, user, "volttron", TopicPermissions("^(?!secret).*", ".*"))
    assert admin.topic_permissions(vhost) == {user: {"volttron": TopicPermissions("^(?!secret).*", ".*")}}
    admin.clear_topic_permissions(vhost, user)
    assert admin.topic_permissions(vhost) == {}
    admin.clear_topic_permissions(vhost, user)  # nothing left: nothing to do


def test_policies_round_trip_and_clearing_twice_is_safe(broker) -> None:
    admin, vhost = broker.admin, broker.vhost
    admin.set_policy(vhost, "ttl", "^volttron$", {"message-ttl": 1000}, apply_to="queues", priority=2)
    assert admin.policies(vhost) == {"ttl": {"pattern": "^volttron$", "definition": {"message-ttl": 1000},
                                             "apply-to": "queues", "priority": 2}}
    admin.clear_policy(vhost, "ttl")
    admin.clear_policy(vhost, "ttl")
    assert admin.policies(vhost) == {}


def test_an_unknown_parameter_component_is_a_clear_error_not_broker_down(broker) -> None:
    with pytest.raises(BrokerAdminError, match="no-such-component") as raised:
        broker.admin.set_parameter("no-such-component", broker.vhost, "x", {"uri": "amqp://"})
    assert type(raised.value) is BrokerAdminError
    broker.admin.clear_parameter("no-such-component", broker.vhost, "x")  # absent: nothing to do
    assert broker.admin.parameters("no-such-component", broker.vhost) == {}
