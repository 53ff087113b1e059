"""Settings of the beat processes tests/fleet/test_beat_failover.py starts: the project's,
with one short probe entry (a ping sent to a queue of the test's own) as the whole schedule."""

import os

from fleet.settings import *  # noqa: F403

BEAT_PROBE_PERIOD = float(os.environ["KEELSON_TEST_BEAT_PERIOD"])
CELERY_BEAT_SCHEDULE = {
    "hub-beat-probe": {
        "task": "fleet.tasks.fleet_ping_task",
        "schedule": BEAT_PROBE_PERIOD,
        "args": ["beat-probe"],
        "options": {"queue": "beat-probe"},
    }
}
