"""Transports: the asyncio drivers behind connections (WebSocket in both dialects, REST, Send
API, none) and the file storage they share."""
