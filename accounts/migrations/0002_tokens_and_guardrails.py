"""API tokens (hashed) and team guardrails.

Existing teams keep working: they get allowed namespaces ["*"] and cluster-scoped kinds ON
(the AddField default); new teams get cluster-scoped kinds OFF (the AlterField default).
Existing DRF authtoken keys are moved into ApiToken as their SHA-256 (scope admin, as they
were, expiring after the default lifetime) and the plaintext rows are deleted.
"""

import hashlib
from datetime import timedelta

import django.db.models.deletion
import django.utils.timezone
import accounts.models
from django.conf import settings
from django.db import migrations, models


def move_authtoken_keys(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("accounts", "ApiToken")
    expires = django.utils.timezone.now() + timedelta(days=settings.KEELSON_API_TOKEN_DEFAULT_DAYS)
    for legacy in Token.objects.all():
        ApiToken.objects.get_or_create(
            token_hash=hashlib.sha256(legacy.key.encode()).hexdigest(),
            defaults={
                "user_id": legacy.user_id,
                "name": "legacy DRF token",
                "scope": "admin",
                "prefix": legacy.key[:6],
                "expires_at": expires,
            },
        )
    Token.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('authtoken', '0004_alter_tokenproxy_options'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='team',
            name='allow_cluster_scoped',
            field=models.BooleanField(default=True),
        ),
        migrations.AlterField(
            model_name='team',
            name='allow_cluster_scoped',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='team',
            name='allowed_namespaces',
            field=models.JSONField(blank=True, default=accounts.models.list_all_namespaces),
        ),
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('scope', models.CharField(choices=[('read', 'Read (GET, HEAD, OPTIONS only)'), ('write', 'Write (up to operator actions)'), ('admin', 'Admin (everything the user may do)')], default='read', max_length=8)),
                ('prefix', models.CharField(max_length=16)),
                ('token_hash', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('expires_at', models.DateTimeField()),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at'],
                'constraints': [models.CheckConstraint(condition=models.Q(('scope__in', ['read', 'write', 'admin'])), name='apitoken_scope_valid')],
            },
        ),
        migrations.RunPython(move_authtoken_keys, migrations.RunPython.noop),
    ]
