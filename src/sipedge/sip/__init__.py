"""The pure, sans-I/O SIP core.

Nothing in this package does I/O or reads the clock: bytes and ``now`` go in; messages,
events, bytes to send and deadlines come out. It imports only the standard library.
"""
