"""The arguments of `dynmx record add|rm|set|batch`, apart from the code that runs them, so that
building the whole parser (for --help, --version, completion) loads no DNS or server code."""

from __future__ import annotations

import argparse

DATA_HELP = (
    "the record's data as on a zone-file line (nsupdate's `update add NAME TTL TYPE DATA...`):"
    " the words are joined by spaces, so `MX 10 mx1` is one record however the shell split it;"
    " names are relative to the zone. TXT/SPF: each unquoted word is one string, as in a zone"
    ' file, but an argument that holds spaces and no quote (the shell\'s "v=spf1 mx -all") is one'
    " string. Data starting with '-': options first, then NAME TYPE -- DATA"
)
EXAMPLES = {
    "add": """examples:
  dynmx record add www.example.test A 192.0.2.10 --ttl 300 -c dynmx.toml
  dynmx record add example.test MX 10 mx1 -c dynmx.toml            # one record: 10 mx1.example.test.
  dynmx record add example.test TXT "v=spf1 mx -all" -c dynmx.toml  # one string
  dynmx record add www.example.test A --data 192.0.2.10 --data 192.0.2.11 -c dynmx.toml
""",
    "rm": """examples:
  dynmx record rm www.example.test A 192.0.2.10 -c dynmx.toml   # one record
  dynmx record rm www.example.test A -c dynmx.toml              # the A RRset
  dynmx record rm www.example.test -c dynmx.toml                # every record of the name

A removal that finds nothing says `nothing matched: ...` and exits 1; the SOA (and the
apex's NS RRset as a whole) cannot be removed.
""",
    "set": """examples:
  dynmx record set www.example.test A --data 192.0.2.11 --data 192.0.2.12 -c dynmx.toml
  dynmx record set example.test MX 10 mx1 --data "20 mx2" -c dynmx.toml
""",
    "batch": """A batch file holds one change a line, applied as ONE update (one serial bump, all or
nothing, like knotc zone-begin / zone-set / zone-commit); a bad line is reported as
FILE:LINE: reason and nothing is applied. Record data is zone-file text (TXT strings
with spaces need quotes). Every line must be in one zone.

  # comment; blank lines are ignored
  add NAME [TTL] TYPE DATA...     add a record (TTL defaults to --ttl)
  set NAME [TTL] TYPE DATA...     replace the RRset (several set lines of one RRset give it together)
  rm  NAME [TYPE [DATA...]]       remove a record, an RRset, or the whole name

examples:
  dynmx record batch changes.txt -c dynmx.toml
  dynmx record batch - -c dynmx.toml <<'EOF'
  rm  old.example.test A
  add new.example.test 300 A 192.0.2.7
  add example.test TXT "v=spf1 mx -all"
  EOF
""",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], func: object) -> None:
    record = sub.add_parser("record", help="add, remove or replace records (RFC 2136 UPDATE with TSIG)")
    verbs = record.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("add", "add a record (or several, with --data)"),
        ("rm", "remove a record, an RRset or a name; exit 1 when nothing matched"),
        ("set", "replace an RRset"),
        ("batch", "apply a file of changes (or - for stdin) as one update"),
    ):
        parser = verbs.add_parser(
            verb,
            help=text,
            description=text,
            epilog=EXAMPLES[verb],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if verb == "batch":
            parser.add_argument("file", help="the batch file, one change a line; - reads stdin")
            parser.add_argument(
                "--ttl", type=int, default=3600, help="TTL of add/set lines without one (3600)"
            )
        else:
            parser.add_argument("name")
            parser.add_argument(
                "type", nargs="?" if verb == "rm" else None, help="record type (A, MX, TXT, ...)"
            )
            parser.add_argument("data", nargs="*", help=DATA_HELP)
            parser.add_argument(
                "--data",
                dest="more",
                action="append",
                metavar="RDATA",
                help="one more record of the same NAME and TYPE (its data as one argument); repeatable",
            )
            if verb != "rm":
                parser.add_argument("--ttl", type=int, default=3600, help="TTL of the records (3600)")
        parser.add_argument("--zone", help="the zone (default: the longest served zone containing NAME)")
        parser.add_argument(
            "--server",
            help="send a TSIG-signed RFC 2136 UPDATE to HOST:PORT (a key from the zone's allow_update)"
            " instead of handing the edit to the local server over its control socket",
        )
        parser.add_argument(
            "--offline",
            action="store_true",
            help="edit the zone files directly (refused while a server runs)",
        )
        parser.add_argument("--config", "-c", required=True, help="TOML config file")
        parser.set_defaults(func=func)
