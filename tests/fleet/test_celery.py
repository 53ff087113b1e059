from __future__ import annotations

import pytest

from core.celery import QUEUES
from core.celery import app as celery_app
from fleet.tasks import fleet_ping_task


def test_broker_is_rabbitmq() -> None:
    # then the test run goes through RabbitMQ, as production does
    assert celery_app.conf.broker_url.startswith("amqp://")


@pytest.mark.usefixtures("celery_worker")
def test_task_round_trip_through_rabbitmq_with_a_real_worker() -> None:
    # when
    result = fleet_ping_task.delay("hello fleet")
    # then
    answer = result.get(timeout=30)
    assert answer["payload"] == "hello fleet"
    assert answer["worker"]


def test_each_concern_has_its_own_queue_and_routing_key() -> None:
    queues = {queue.name: queue.routing_key for queue in celery_app.conf.task_queues}
    assert set(QUEUES) <= set(queues)
    assert all(queues[name] == name for name in QUEUES)


def test_idempotent_tasks_ack_late_and_json_only() -> None:
    assert fleet_ping_task.acks_late is True
    assert celery_app.amqp.router.route({}, fleet_ping_task.name)["queue"].name == "default"
    assert celery_app.conf.task_serializer == "json"
    assert celery_app.conf.accept_content == ["json"]


def test_every_task_soft_limit_fits_under_its_hard_limit() -> None:
    # Celery refuses to send a task whose soft limit exceeds its hard limit: beat's fan-out
    # once failed that way.
    celery_app.loader.import_default_modules()
    checked = 0
    for name, task in celery_app.tasks.items():
        if not name.startswith(("clusters.", "fleet.", "policies.")):
            continue
        hard = task.time_limit or celery_app.conf.task_time_limit
        soft = task.soft_time_limit or celery_app.conf.task_soft_time_limit
        assert soft <= hard, name
        checked += 1
    assert checked >= 5
