"""Keelson benchmarks at fleet scale (issue 9): `python -m benchmarks` or `make bench`.

Everything runs against a separate database, Redis databases and key prefix (see
`benchmarks.env`), so a benchmark run never touches the development data.
"""
