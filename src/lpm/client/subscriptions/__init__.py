"""Subscriptions: conversation subscriptions, routing subscriptions with their rings, and the
webhooks intake; each keeps its lifecycle in one state table."""
