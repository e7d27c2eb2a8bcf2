"""The routing table's history (`dynmx.policy.route_log`): cursors and what changed after them."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from dynmx.policy.route_log import Change, Delta, RouteLog, apply, as_table, delta_json, delta_postfix, diff
from dynmx.policy.routes import Hop, Route

BOOT = "b00t"
POOL = "example.test."
UP = Route(POOL, (Hop("mx1.example.test.", 10, "up"), Hop("mx2.example.test.", 20, "up")), POOL)
DRAINED = Route(POOL, (Hop("mx2.example.test.", 10, "up"), Hop("mx1.example.test.", 20, "admin-down")), POOL)
STATIC = Route("static.example.test.", (Hop("mx1.example.test.", 5, "static"),), None)
NEW = Route("new.example.test.", (Hop("mx1.example.test.", 10, "static"),), None)


def test_a_cursor_names_the_boot_and_the_version() -> None:
    log = RouteLog(BOOT).record([UP])
    assert log.cursor == "b00t-1"


def test_the_same_table_again_keeps_the_version() -> None:
    log = RouteLog(BOOT).record([UP, STATIC])
    assert log.record([STATIC, UP]) is log


def test_nothing_changed_after_the_newest_cursor() -> None:
    log = RouteLog(BOOT).record([UP, STATIC])
    assert log.since(log.cursor) == Delta("b00t-1", False, ())


def test_a_changed_route_is_listed_with_its_route_now() -> None:
    log = RouteLog(BOOT).record([UP, STATIC])
    cursor = log.cursor
    log = log.record([DRAINED, STATIC])
    assert log.since(cursor) == Delta("b00t-2", False, (Change(POOL, DRAINED),))


def test_a_hop_state_alone_is_a_change() -> None:
    down = Route(POOL, (Hop("mx1.example.test.", 10, "down"), Hop("mx2.example.test.", 20, "up")), POOL)
    log = RouteLog(BOOT).record([UP])
    cursor = log.cursor
    assert log.record([down]).since(cursor).changes == (Change(POOL, down),)


def test_an_added_domain_is_listed() -> None:
    log = RouteLog(BOOT).record([UP])
    cursor = log.cursor
    assert log.record([UP, NEW]).since(cursor).changes == (Change(NEW.domain, NEW),)


def test_a_removed_domain_is_listed_without_a_route() -> None:
    log = RouteLog(BOOT).record([UP, STATIC])
    cursor = log.cursor
    assert log.record([UP]).since(cursor).changes == (Change(STATIC.domain, None),)


def test_changes_over_several_versions_are_listed_once_each() -> None:
    log = RouteLog(BOOT).record([UP, STATIC])
    cursor = log.cursor
    log = log.record([DRAINED, STATIC]).record([DRAINED]).record([DRAINED, NEW])
    assert log.since(cursor).changes == (
        Change(POOL, DRAINED),
        Change(NEW.domain, NEW),
        Change(STATIC.domain, None),
    )


def test_a_change_undone_since_the_cursor_is_not_listed() -> None:
    log = RouteLog(BOOT).record([UP])
    cursor = log.cursor
    log = log.record([DRAINED]).record([UP])
    assert log.cursor == "b00t-3"
    assert log.since(cursor).changes == ()


def test_a_cursor_of_another_boot_gives_the_full_table() -> None:
    log = RouteLog(BOOT).record([UP, STATIC])
    assert log.since("0ther-1") == Delta("b00t-1", True, (Change(POOL, UP), Change(STATIC.domain, STATIC)))


def test_a_cursor_past_the_history_gives_the_full_table() -> None:
    log = RouteLog(BOOT, keep=3).record([UP])
    first = log.cursor
    log = log.record([DRAINED])
    second = log.cursor
    log = log.record([UP]).record([DRAINED])  # versions 2, 3, 4 are kept
    assert log.since(first).full
    assert not log.since(second).full


def test_a_cursor_from_the_future_or_malformed_gives_the_full_table() -> None:
    log = RouteLog(BOOT).record([UP])
    for cursor in ("b00t-2", "b00t-0", "b00t-", "b00t", "", "17", "b00t-x", "b00t-²"):
        assert log.since(cursor).full, cursor


def test_the_full_table_lists_nothing_as_removed() -> None:
    log = RouteLog(BOOT).record([UP, STATIC]).record([UP])
    assert log.since("").changes == (Change(POOL, UP),)


def test_json_carries_cursor_full_and_removed_domains_without_hops() -> None:
    delta = Delta("b00t-2", False, (Change(POOL, DRAINED), Change(STATIC.domain, None)))
    assert json.loads(delta_json(delta)) == {
        "cursor": "b00t-2",
        "full": False,
        "routes": [
            {
                "domain": POOL,
                "pool": POOL,
                "hops": [
                    {"host": "mx2.example.test.", "preference": 10, "state": "up"},
                    {"host": "mx1.example.test.", "preference": 20, "state": "admin-down"},
                ],
                "removed": False,
            },
            {"domain": STATIC.domain, "pool": None, "hops": [], "removed": True},
        ],
    }


def test_postfix_carries_the_cursor_in_comments_and_names_removed_domains_in_comments() -> None:
    delta = Delta("b00t-2", False, (Change(POOL, DRAINED), Change(STATIC.domain, None)))
    assert delta_postfix(delta) == (
        "# cursor: b00t-2\n"
        "# full: false\n"
        "example.test    smtp:[mx2.example.test]\n"
        "# removed: static.example.test\n"
    )


DOMAINS = st.sampled_from([f"d{i}.test." for i in range(6)])
HOPS = st.lists(
    st.builds(
        Hop,
        st.sampled_from(["mx1.test.", "mx2.test.", "mx3.test."]),
        st.integers(0, 30),
        st.sampled_from(["up", "down", "admin-down", "static"]),
    ),
    max_size=3,
).map(tuple)
TABLES = st.dictionaries(DOMAINS, st.tuples(HOPS, st.sampled_from([None, "pool.test."]))).map(
    lambda found: {domain: Route(domain, hops, pool) for domain, (hops, pool) in found.items()}
)


@given(TABLES, TABLES)
def test_applying_the_diff_to_the_old_table_gives_the_new(
    old: dict[str, Route], new: dict[str, Route]
) -> None:
    assert apply(old, diff(old, new)) == new


@given(st.lists(TABLES, min_size=1, max_size=6), st.data())
def test_applying_the_changes_since_any_kept_cursor_gives_the_table_now(
    tables: list[dict[str, Route]], data: st.DataObject
) -> None:
    log = RouteLog(BOOT, keep=4)
    held: list[tuple[str, dict[str, Route]]] = []  # each cursor and the table a consumer had then
    for table in tables:
        log = log.record(table.values())
        held.append((log.cursor, table))
    cursor, then = data.draw(st.sampled_from(held))
    delta = log.since(cursor)
    start = {} if delta.full else then
    assert apply(start, delta.changes) == as_table(tables[-1].values())
    assert delta.cursor == log.cursor
