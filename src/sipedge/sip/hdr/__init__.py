"""Typed values of individual SIP header fields."""
