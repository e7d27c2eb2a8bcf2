"""The answer store: compiled zones kept in `state_dir`, so a restart with unchanged zone
files serves them without parsing or compiling them again (NSD's old `nsd.db`, Knot's
LMDB zone contents).

`codec` turns one compiled zone into bytes and back (pure); `answers` keeps those bytes in
SQLite, one row per zone file, with what makes a row current: the file's stamp and digest,
the store format and dynmx version, a fingerprint of the config that shaped the answers,
the set of served origins, and the SOA serial the journal must agree with. Anything that
does not match, or does not check out against its own checksum, is not served: the zone is
read and compiled as on a cold start, and the row written again.
"""
