"""sipedge: a SIP edge proxy, WebRTC-to-SIP gateway and small session border controller."""

__version__ = "0.1.0"
