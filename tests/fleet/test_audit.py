from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import REDACTED, audit_purge_before, audit_record
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_audit_record_redacts_secret_looking_details() -> None:
    event = audit_record(
        actor=make_user(),
        action="cluster.register",
        detail={"name": "c1", "kubeconfig": "apiVersion: v1 ...", "auth": {"token": "abc"}},
    )
    event.refresh_from_db()
    assert event.detail == {"name": "c1", "kubeconfig": REDACTED, "auth": {"token": REDACTED}}
    assert event.actor_name.startswith("user")


def test_the_audit_log_refuses_updates_and_deletes() -> None:
    event = audit_record(actor=None, action="system.test")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.action == "system.test"


def test_retention_purge_is_the_one_allowed_delete() -> None:
    audit_record(actor=None, action="system.old")
    purged = audit_purge_before(cutoff=timezone.now() + timedelta(seconds=1))
    assert purged == 1
    assert not AuditEvent.objects.exists()


def test_deleting_a_user_keeps_their_audit_trail() -> None:
    user = make_user(username="leaver")
    audit_record(actor=user, action="team.create")
    user.delete()
    event = AuditEvent.objects.get(action="team.create")
    assert event.actor_name == "leaver"
