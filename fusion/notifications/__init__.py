"""Notifications: an org routes the hub's events to its channels (email, Slack-compatible
incoming webhooks, signed outbound webhooks); each delivery is a job (docs/notifications.md)."""
