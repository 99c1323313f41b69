"""The asyncio runtime around the pure SIP core: sockets, TLS, WebSocket and DNS."""
