"""Pools as `dynmx status` and `dynmx explain` print them, from the JSON of /status and /explain.

Both say the same thing about the same moment: which target a query arriving now gets
first (`next`, made by `dynmx.app.explain.next_answer`), how the pool picks among its
orderings in words, and per member the numbers its strategy uses: the preference (the
base order of every strategy), the weight (weighted), the load (least-load).
"""

from __future__ import annotations

from typing import Any


def now_text(upcoming: dict[str, Any]) -> str:
    """Which target a query arriving now gets first."""
    if upcoming.get("mode") == "weighted":
        shares = upcoming.get("first_shares", {})
        return "first place drawn: " + ", ".join(f"{host} {share:.1%}" for host, share in shares.items())
    if upcoming.get("processes"):
        processes, orderings = upcoming["processes"], upcoming["orderings"]
        return f"each of {processes} answer processes rotates through the {orderings} orderings on its own"
    first = upcoming.get("first") or "-"
    if upcoming.get("mode") == "rotate":
        return f"a query now gets {first} first (ordering {upcoming['index']} of {upcoming['orderings']})"
    return f"every query gets {first} first"


def member_line(member: dict[str, Any], strategy: str) -> str:
    """A member with its health and the numbers `strategy` uses."""
    numbers = f"preference {member['preference']}"
    if strategy == "weighted":
        numbers += f" weight {member['weight']:g}"
    if member.get("load") is not None:
        numbers += f" load {member['load']}"
    latency = "" if member.get("latency") is None else f" {member['latency'] * 1000:.1f}ms"
    reason = f", last {member['reason']}{latency}" if member.get("reason") else ""
    row = f"{member['host']:<30} {member['role']:<8} {member['state']:<10} {numbers}"
    return f"  {row}, first in {member['first']} answers{reason}"


def pool_lines(pool: dict[str, Any]) -> list[str]:
    """A pool of /status: what a query gets now, how the pool picks, one line per member."""
    upcoming = pool.get("next") or {}
    flags = (" FAIL-OPEN (no member eligible: all listed)" if pool["fail_open"] else "") + (
        " PROMOTED (standbys serve)" if pool.get("promoted") else ""
    )
    lines = [
        f"pool {pool['name']} {pool['strategy']} ttl {pool['ttl']}: {now_text(upcoming)}{flags}",
        f"  picks: {upcoming.get('how', pool['mode'])}",
    ]
    lines += [member_line(member, pool["strategy"]) for member in pool["members"]]
    return lines


def explain_lines(result: dict[str, Any]) -> list[str]:
    """`dynmx explain`: the answer (each ordering with its share, for a weighted pool), the
    TTL, the reasons, then the pool's members with their numbers."""
    lines = [f"{result['name']} MX" + (f" from {result['from']}" if result.get("from") else "")]
    answer = result.get("answer")
    if isinstance(answer, list):
        for line in answer:  # a record, or an ordering with its share of the queries (weighted)
            shared = isinstance(line, dict)
            lines.append(f"  {line['share']:.1%}: {', '.join(line['answer'])}" if shared else f"  {line}")
    else:
        lines.append(f"  {answer}")
    if "ttl" in result:
        lines.append(f"ttl {result['ttl']}")
    lines += [f"why: {reason}" for reason in result.get("why", [])]
    pool = result.get("pool")
    if isinstance(pool, dict):
        lines += [f"member{member_line(member, pool['strategy'])[1:]}" for member in pool["members"]]
    return lines
