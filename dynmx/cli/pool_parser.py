"""The arguments of `dynmx pool ...`, apart from the code that runs them (dynmx.cli.pools), so
that building the whole parser loads no config code; the allowed values are the config's own."""

from __future__ import annotations

import argparse

from dynmx.config_choices import POOL_KINDS, PROBES, ROLES, STRATEGIES

EXAMPLES = {
    "add": "example:\n  dynmx pool add example.test --strategy weighted -c dynmx.toml\n",
    "set": "example:\n  dynmx pool set example.test --strategy least-load --ttl 60 -c dynmx.toml\n",
    "member-add": (
        "example:\n  dynmx pool member-add example.test mx3.example.test --preference 30 --role relay"
        " -c dynmx.toml\n"
    ),
    "member-set": (
        "Changes only the keys given; the member keeps its other keys, comments and place.\n\n"
        "examples:\n  dynmx pool member-set example.test mx1.example.test --weight 3 -c dynmx.toml\n"
        "  dynmx pool member-set example.test mx2.example.test --preference 20 --role standby -c dynmx.toml\n"
    ),
}


def _parser(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], verb: str, text: str
) -> argparse.ArgumentParser:
    return verbs.add_parser(
        verb,
        help=text,
        description=text,
        epilog=EXAMPLES.get(verb),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _member_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--preference, --weight, --role, --probe; their allowed values are the config's own."""

    def default(value: object) -> object:
        return value if defaults else None

    shown = " (default: %(default)s)" if defaults else ""
    parser.add_argument(
        "--preference", type=int, default=default(10), help="base preference, 0-65535" + shown
    )
    parser.add_argument(
        "--weight", type=float, default=default(1.0), help="weighted: share of first place" + shown
    )
    parser.add_argument("--role", choices=ROLES, default=default("primary"), help="member role" + shown)
    parser.add_argument("--probe", choices=PROBES, default=default("smtp"), help="health probe" + shown)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], func: object) -> None:
    pool = sub.add_parser("pool", help="add, remove or change pools and their members in the config file")
    verbs = pool.add_subparsers(dest="verb", required=True)
    add = _parser(verbs, "add", "add a pool (then add members)")
    add.add_argument("pool")
    add.add_argument("--strategy", choices=STRATEGIES, default="round-robin", help="(default: %(default)s)")
    add.add_argument(
        "--kind", choices=POOL_KINDS, default="mx", help="the RRset rewritten (default: %(default)s)"
    )
    add.add_argument("--ttl", type=int, default=30, help="TTL of rewritten answers (default: %(default)s)")
    remove = _parser(verbs, "rm", "remove a pool")
    remove.add_argument("pool")
    change = _parser(verbs, "set", "change a pool's strategy, kind or ttl")
    change.add_argument("pool")
    change.add_argument("--strategy", choices=STRATEGIES)
    change.add_argument("--kind", choices=POOL_KINDS, help="the RRset rewritten")
    change.add_argument("--ttl", type=int)
    member_add = _parser(verbs, "member-add", "add a member to a pool")
    member_add.add_argument("pool")
    member_add.add_argument("host")
    _member_options(member_add, defaults=True)
    member_set = _parser(verbs, "member-set", "change a member's preference, weight, role or probe in place")
    member_set.add_argument("pool")
    member_set.add_argument("host")
    _member_options(member_set, defaults=False)
    member_rm = _parser(verbs, "member-rm", "remove a member from a pool")
    member_rm.add_argument("pool")
    member_rm.add_argument("host")
    for parser in verbs.choices.values():
        parser.add_argument("--config", "-c", required=True, help="TOML config file to edit")
        parser.set_defaults(func=func)
