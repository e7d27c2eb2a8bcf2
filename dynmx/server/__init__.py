"""Transports: UDP, TCP (RFC 7766) and the control HTTP listener. Bytes only, no DNS logic."""
