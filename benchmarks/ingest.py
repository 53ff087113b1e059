"""Health sample ingest: the product's bulk path (`samples_copy` from plain tuples, as
`clusters_collect` writes a shard's samples) against raw PostgreSQL COPY into the same
table, from the same Python values, on the same machine."""

from __future__ import annotations

import io
import time
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from benchmarks.results import Row
from clusters.models import HealthSample
from clusters.services.history import SAMPLE_COLUMNS, samples_copy

COLUMNS = SAMPLE_COLUMNS  # the product's own column list


def _values(cluster_ids: list[int], rows: int, base: datetime) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for n in range(rows):
        out.append(
            (
                cluster_ids[n % len(cluster_ids)],
                base + timedelta(seconds=n // len(cluster_ids) * 30),
                "ready",
                3.5 + n % 7,
                3,
                3,
                12 + n % 5,
                n % 2,
                0,
                1500 + n % 300,
                3 * 2**30,
                n % 3,
            )
        )
    return out


def _product(values: list[tuple[object, ...]]) -> float:
    started = time.perf_counter()
    samples_copy(values)
    return time.perf_counter() - started


def raw_copy(table: str, columns: tuple[str, ...], values: list[tuple[object, ...]]) -> float:
    """The baseline: seconds for a plain COPY of `values` into `table`, written directly
    with psycopg2 (none of the product's code)."""
    started = time.perf_counter()
    buffer = io.StringIO()
    for row in values:
        buffer.write(
            "\t".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in row) + "\n"
        )
    buffer.seek(0)
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg2's own cursor: COPY FROM STDIN
        raw.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
    return time.perf_counter() - started


def run(*, cluster_ids: list[int], rows: int, repeats: int = 3) -> list[Row]:
    base = timezone.now() - timedelta(days=1)
    values = _values(cluster_ids, rows, base)
    product, copy = [], []
    for _ in range(repeats):  # interleaved, best of each: the machine is shared
        product.append(_product(values))
        copy.append(raw_copy(HealthSample._meta.db_table, COLUMNS, values))
    HealthSample.objects.filter(at__gte=base, at__lt=base + timedelta(hours=23)).delete()
    best_product, best_copy = min(product), min(copy)
    ratio = best_copy / best_product
    return [
        Row(
            "ingest",
            f"health samples: samples_copy vs raw COPY ({rows} rows, best of {repeats})",
            f"{rows / best_product:,.0f} vs {rows / best_copy:,.0f} rows/s = {100 * ratio:.0f}%",
            target=">= 50% of COPY",
            ok=ratio >= 0.5,
            value=100 * ratio,
            detail={"product_s": product, "copy_s": copy},
        )
    ]
