"""`manage.py keelson_send_test_notification --channel ID`: the "Send test" button, from a
shell, sent from this process so the outcome is printed (or queued with `--queue`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifications.choices import DeliveryState
from notifications.delivery import delivery_attempt
from notifications.models import Channel, Delivery
from notifications.services import channel_send_test


class Command(BaseCommand):
    help = "Send a test notification to a channel and print what happened."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--channel", type=int, required=True, help="the channel's id")
        parser.add_argument(
            "--queue", action="store_true", help="queue it for a worker instead of sending here"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        channel = Channel.objects.select_related("team").filter(pk=options["channel"]).first()
        if channel is None:
            raise CommandError(f"No channel has id {options['channel']}.")
        delivery = channel_send_test(channel=channel, actor=None, queue=options["queue"])
        if options["queue"]:
            self.stdout.write(f"Test queued as delivery {delivery.pk}.")
            return
        state = delivery_attempt(delivery_id=delivery.pk)
        delivery = Delivery.objects.get(pk=delivery.pk)
        if state == DeliveryState.DELIVERED:
            self.stdout.write(
                f"Delivered to {channel.name} ({channel.kind}) as delivery {delivery.pk}."
            )
            return
        retry = " (retries follow on a worker)" if state == DeliveryState.PENDING else ""
        raise CommandError(
            f"Delivery {delivery.pk} to {channel.name} failed{retry}: {delivery.last_error}"
        )
