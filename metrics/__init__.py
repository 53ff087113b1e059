"""Prometheus metrics: `/metrics` (fleet gauges computed at scrape time and Keelson's own
request, task, queue and websocket figures). See docs/user-guide.md "Monitoring Keelson"."""
