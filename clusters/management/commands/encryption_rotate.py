"""`manage.py encryption_rotate`: re-encrypt every stored credential under the first key.

Rotation: put the new key first in KEELSON_ENCRYPTION_KEYS (keep the old one after it),
restart, run this, then drop the old key.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.services import audit_record
from clusters.models import ClusterCredential
from core.crypto import DecryptionError, reencrypt


class Command(BaseCommand):
    help = "Re-encrypt stored cluster credentials with the primary encryption key."

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(ClusterCredential.objects.order_by("pk").values_list("pk", flat=True))
        failed: list[int] = []
        for done, pk in enumerate(ids, start=1):
            with transaction.atomic():
                credential = ClusterCredential.objects.select_for_update().get(pk=pk)
                try:
                    credential.ciphertext = reencrypt(credential.ciphertext)
                except DecryptionError:
                    failed.append(credential.cluster_id)
                    continue
                credential.save(update_fields=["ciphertext"])
            self.stdout.write(f"\r[{done}/{len(ids)}] re-encrypted", ending="")
        self.stdout.write("")
        audit_record(
            actor=None,
            action="encryption.rotate",
            detail={"credentials": len(ids) - len(failed), "failed": len(failed)},
        )
        if failed:
            raise CommandError(
                f"{len(failed)} credentials could not be decrypted with any configured key "
                f"(cluster ids {failed[:20]}); they were left unchanged."
            )
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {len(ids)} credentials."))
