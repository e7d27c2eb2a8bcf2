"""Where `dynmx registrar discover` finds its data by default: a leaf, so that the CLI can show
these defaults without loading the RDAP client (and httpx)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BOOTSTRAP = Path(__file__).resolve().parents[2] / "examples" / "rdap-dns.json"
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "examples" / "registrars.toml"
IANA_BOOTSTRAP = "https://data.iana.org/rdap/dns.json"
