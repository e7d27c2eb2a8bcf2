"""The arguments of `dynmx zone ...`, apart from the code that runs them, so that building the
whole parser (for --help, --version, completion) loads no DNS or server code."""

from __future__ import annotations

import argparse

EXAMPLES = {
    "add": "examples:\n  dynmx zone add shop.example.test --mx mx1.example.test:10 --ns ns1.example.test"
    "\n  dynmx zone add example.net --ns ns1.example.net=192.0.2.53 --mx mx.example.net --a 192.0.2.25",
    "list": "example:\n  dynmx zone list --json",
    "show": "example:\n  dynmx zone show example.test",
    "rm": "example:\n  dynmx zone rm shop.example.test    # file kept as NAME.zone.removed",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], func: object) -> None:
    zone = sub.add_parser("zone", help="add, list, show, remove zones; status, notify, retransfer")
    verbs = zone.add_subparsers(dest="verb", required=True)
    new = verbs.add_parser(
        "add",
        help="create a zone (SOA/NS from [defaults]) and its parent delegation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES["add"],
    )
    new.add_argument("domain")
    new.add_argument("--mx", action="append", default=[], help="HOST[:PREFERENCE], repeatable")
    new.add_argument("--ns", action="append", default=[], help="HOST[=ADDR] (ADDR: glue), repeatable")
    new.add_argument("--a", action="append", default=[], help="an address of the apex, repeatable")
    for verb, text in (("list", "list the zones"), ("show", "print a zone"), ("rm", "remove a zone")):
        parser = verbs.add_parser(
            verb, help=text, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES[verb]
        )
        if verb != "list":
            parser.add_argument("domain")
        if verb != "rm":
            parser.add_argument("--json", action="store_true", help="print JSON")
    state = verbs.add_parser(
        "status", help="serials, secondaries or primary, problems (as knotc zone-status)"
    )
    state.add_argument("domain", nargs="?", help="one zone (default: every zone)")
    state.add_argument("--json", action="store_true", help="print the JSON")
    verbs.add_parser("notify", help="send NOTIFY to the zone's notify targets now").add_argument("domain")
    verbs.add_parser("retransfer", help="AXFR a secondary zone from its primary now").add_argument("domain")
    for verb in ("status", "notify", "retransfer"):
        verbs.choices[verb].add_argument("--http", help="HOST:PORT of the control listener")
    for parser in verbs.choices.values():
        parser.add_argument("--config", "-c", required=True, help="TOML config file")
        parser.set_defaults(func=func)
