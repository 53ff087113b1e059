"""Alert rules, their evaluation and lifecycle (firing, grouped, acknowledged, silenced,
resolved). Delivery is the notifications package's job."""
