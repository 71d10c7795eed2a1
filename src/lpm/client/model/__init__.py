"""The SDK object model: conversations, dialogs, participants, messages and their cache.

It knows nothing of sockets or HTTP: it talks to its connection through
:class:`lpm.client.actions.ConnectionActions`."""
