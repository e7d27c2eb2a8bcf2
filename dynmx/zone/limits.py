"""Limits on zone files that config names as defaults: a leaf, importing nothing from dynmx,
so that loading a config does not load the zone parser."""

from __future__ import annotations

# Bytes; a larger file is refused unread (`[server] max_zone_file_size`). Parse time and memory
# grow linearly with the file; 128 MiB is about 3,500,000 A records, with room above the largest
# zones we know of, and its parse still fits a small machine's memory.
DEFAULT_MAX_FILE_SIZE = 128 << 20
