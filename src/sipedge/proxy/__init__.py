"""The stateful proxy (RFC 3261 §16): validation, routing, forking, response contexts."""
