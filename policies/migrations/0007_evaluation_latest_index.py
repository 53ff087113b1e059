# The newest-result index with `id` and `status`: DISTINCT ON and the compliance trend read
# it in order, index-only. Built and dropped CONCURRENTLY: the results table is the
# largest there is, and a plain CREATE INDEX would block every sweep's writes meanwhile.

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('clusters', '0002_clustertemplate_clusterprovisioning'),
        ('policies', '0006_evaluation_checked_at'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='policyevaluation',
            index=models.Index(
                fields=['policy', 'cluster', '-evaluated_at', '-id'],
                include=('status',),
                name='evaluation_latest',
            ),
        ),
        RemoveIndexConcurrently(
            model_name='policyevaluation',
            name='policies_po_policy__f299e6_idx',
        ),
    ]
