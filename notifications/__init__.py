"""Notification channels (e-mail, webhooks, Slack, Teams, Alertmanager) and their deliveries.

Callers build a `notifications.types.Notification` and hand it to
`notifications.services.dispatch`; nothing above this package knows how a channel sends."""
