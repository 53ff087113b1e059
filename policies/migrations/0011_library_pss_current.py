"""Issue 26's library change: the probe/lifecycle host control, the restricted /proc
mount control (v1.35+), the runAsNonRoot fix, safe sysctls and image volumes, Windows and
user-namespace exemptions. Every team gets it, as 0002 did; bundled policies start
unpinned ("latest", the field's default), and a team that wants a given version of the
standard pins it afterwards (a pinned policy is then kept at that version by later
library reloads)."""

import importlib

from django.db import migrations

load = importlib.import_module("policies.migrations.0002_load_library").load


class Migration(migrations.Migration):
    dependencies = [("policies", "0010_policy_pss_version")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
