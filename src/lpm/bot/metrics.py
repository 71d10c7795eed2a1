"""The bot's Prometheus metrics (``prometheus-client``), in a registry of its own.

Each :class:`~lpm.bot.Bot` has its own :class:`prometheus_client.CollectorRegistry`
(``bot.metrics.registry``), so several bots in one process (tests) never collide; ``/metrics``
of the bot's HTTP endpoint serves it.  Names:

========================================  =========  ===========================================
``lpm_bot_connection_state``              enum       the connection's state (``connected``...)
``lpm_bot_reconnects_total``              counter    sessions restored after a lost socket
``lpm_bot_rings_total{decision}``         counter    rings accepted, rejected, deferred
``lpm_bot_messages_received_total``       counter    consumer messages received
``lpm_bot_messages_sent_total``           counter    messages the handlers sent
``lpm_bot_handler_seconds{kind}``         histogram  handler latency by kind (message, file...)
``lpm_bot_handler_errors_total{kind}``    counter    handlers that raised
``lpm_bot_open_conversations``            gauge      conversations this process holds
``lpm_bot_failovers_total``               counter    conversations taken over from a dead replica
``lpm_bot_handlers_in_flight``            gauge      handlers running now
========================================  =========  ===========================================
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import Enum as EnumMetric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from lpm.enums import ConnectionState

__all__ = ["CONTENT_TYPE_LATEST", "BotMetrics"]

#: Handler latency buckets (seconds): bots answer in milliseconds to a few seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BotMetrics:
    """The metrics of one bot (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connection_state = EnumMetric(
            "lpm_bot_connection_state",
            "State of the bot's connection to the messaging platform",
            states=[str(s) for s in ConnectionState],
            registry=r,
        )
        self.connection_state.state(str(ConnectionState.INITIAL))
        self.reconnects = Counter("lpm_bot_reconnects", "Sessions restored after a lost socket", registry=r)
        self.rings = Counter("lpm_bot_rings", "Rings answered, by decision", ["decision"], registry=r)
        for decision in ("accept", "reject", "defer"):
            self.rings.labels(decision)
        self.messages_received = Counter(
            "lpm_bot_messages_received", "Consumer messages received", registry=r
        )
        self.messages_sent = Counter("lpm_bot_messages_sent", "Messages sent by handlers", registry=r)
        self.handler_seconds = Histogram(
            "lpm_bot_handler_seconds", "Handler latency", ["kind"], buckets=BUCKETS, registry=r
        )
        self.handler_errors = Counter("lpm_bot_handler_errors", "Handlers that raised", ["kind"], registry=r)
        self.open_conversations = Gauge(
            "lpm_bot_open_conversations", "Conversations this process holds", registry=r
        )
        self.failovers = Counter(
            "lpm_bot_failovers", "Conversations taken over from a replica that died", registry=r
        )
        self.in_flight = Gauge("lpm_bot_handlers_in_flight", "Handlers running now", registry=r)

    def track_open_conversations(self, count: Callable[[], int]) -> None:
        """Read the open-conversation count at each scrape."""
        self.open_conversations.set_function(lambda: float(count()))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
