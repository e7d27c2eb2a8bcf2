"""Command-line values read once, with the error a user can act on instead of a traceback."""

from __future__ import annotations

import dns.name

from dynmx.config_values import absolute_name
from dynmx.errors import CommandError


def domain(text: str) -> dns.name.Name:
    """A domain name as typed (`shop.example.test`, with or without the final dot)."""
    try:
        return dns.name.from_text(absolute_name(text))
    except ValueError as error:
        raise CommandError(str(error)) from None
