"""Messages waiting in each Celery queue, asked of the broker at scrape time (a passive
queue_declare answers the count without creating anything; RabbitMQ and Redis alike)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from kombu import Connection
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.celery import QUEUES

logger = logging.getLogger(__name__)
TIMEOUT = 2.0


class QueueCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "keelson_celery_queue_messages",
            "Messages waiting in a Celery queue (not yet taken by a worker).",
            labels=["queue"],
        )
        up = 1.0
        try:
            with Connection(settings.CELERY_BROKER_URL, connect_timeout=TIMEOUT) as conn:
                conn.ensure_connection(max_retries=0, timeout=int(TIMEOUT))
                for queue in QUEUES:
                    channel: Any = conn.channel()
                    try:
                        _, count, _ = channel.queue_declare(queue=queue, passive=True)
                        depth.add_metric([queue], count)
                    except conn.channel_errors:
                        pass  # not declared yet: no worker has consumed from it
                    finally:
                        channel.close()
        except Exception as error:
            # Never the message: it may carry the broker URL with its password.
            logger.warning("queue depths unavailable (%s)", type(error).__name__)
            up = 0.0
        yield depth
        yield GaugeMetricFamily("keelson_broker_up", "1 if the broker answered.", up)
