"""The fixed choices of config keys that the CLI offers too (pool kinds and strategies, member
roles and probes, TSIG algorithms): a leaf, so that building the CLI's parser does not load
the config code."""

from __future__ import annotations

from dynmx.health.kinds import PROBE_KINDS

ROLES = ("primary", "relay", "standby")
STRATEGIES = ("static", "round-robin", "weighted", "least-load")
PROBES = (*PROBE_KINDS, "none")  # "none": not probed
POOL_KINDS = ("mx", "address", "srv")  # the RRset a pool rewrites: MX, A/AAAA, or SRV
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")
