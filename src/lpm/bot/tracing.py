"""Optional OpenTelemetry spans around handlers and the requests they make.

With ``tracing=True`` (``pip install 'lp-messaging-sdk[otel]'``) every handler runs in a span
``lpm.bot.<kind>`` (attributes ``lpm.conversation_id``, ``lpm.handler``, ``lpm.replica``) and
each action it takes (``reply``, ``typing``, ``transfer``, ``close``) in a child span
``lpm.bot.action.<name>``; a handler that raises records the exception and sets the span's status
to error.  The spans go to whatever tracer provider the application configured (the
OpenTelemetry SDK and an exporter); without one the API's no-op tracer costs nearly nothing.
Without ``tracing=True`` nothing is imported.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from lpm.errors import ConfigurationError

__all__ = ["Tracer"]


class Tracer:
    """Spans when enabled, nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self._tracer: Any = None
        if enabled:
            try:
                trace = importlib.import_module("opentelemetry.trace")
            except ImportError:
                raise ConfigurationError(
                    "tracing=True needs opentelemetry-api: pip install 'lp-messaging-sdk[otel]'"
                ) from None
            self._tracer = trace.get_tracer("lpm.bot")

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any]) -> Iterator[None]:
        """A span around the block (an exception is recorded and re-raised)."""
        if self._tracer is None:
            yield
            return
        clean = {k: v for k, v in attributes.items() if v is not None}
        # The span records an exception that leaves the block and sets its status to ERROR.
        with self._tracer.start_as_current_span(name, attributes=clean):
            yield
