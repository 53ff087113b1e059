"""The append-only audit log: every change and every denied request."""
