"""Broker administration against the real local broker: topic permissions, policies, parameters.

Each test runs with both back ends: ``rabbitmqctl`` and, when the management plugin answers (CI
enables it), the management API, which the platforms and fixtures then use.
"""

from __future__ import annotations

import pytest

from volttron.client.messagebus.rmq_admin import BrokerAdminError, CtlAdmin, HttpAdmin, TopicPermissions
from volttron.client.messagebus.rmq_testing import MGMT_LOGIN, broker_instance, management_url

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq]


@pytest.fixture(params=[CtlAdmin.kind, HttpAdmin.kind])
def broker(request):
    with broker_instance("admin") as instance:
        if request.param == CtlAdmin.kind:
            instance.admin = instance.ctl
        elif not isinstance(instance.admin, HttpAdmin):
            url = management_url()
            if url is None:
                pytest.skip(reason="the management plugin does not answer on 127.0.0.1:15672")
            instance.admin = HttpAdmin(url, *MGMT_LOGIN)
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


def test_a_platform_administers_its_broker_over_the_management_api_when_it_answers(tmp_path) -> None:
    """What the platform does at start (its login from the home ``vcfg rabbitmq single`` made): the API
    when it answers, so its agents' users cost no rabbitmqctl VM; else rabbitmqctl on this host."""
    import dataclasses

    from volttron.client.messagebus.rmq_admin import broker_admin
    from volttron.client.messagebus.rmq_config import admin_settings, load_rabbitmq_config

    with broker_instance("pick") as instance:
        if not isinstance(instance.admin, HttpAdmin):
            pytest.skip(reason="the management plugin does not answer on 127.0.0.1:15672")
        home = tmp_path / "home"
        instance.prepare_home(home)
        settings = admin_settings(load_rabbitmq_config(home), home, instance.instance)
        admin = broker_admin(settings, settings.username, settings.password)
        assert isinstance(admin, HttpAdmin)
        user = f"{instance.instance}.picked"
        admin.put_user(user, "pw", ["volttron-agent"])  # as the platform's own (administrator) login
        assert user in instance.ctl.users()
        admin.delete_user(user)
        assert user not in instance.ctl.users()
        closed = dataclasses.replace(settings, mgmt_port=_closed_port())
        assert isinstance(broker_admin(closed, settings.username, settings.password), CtlAdmin)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
