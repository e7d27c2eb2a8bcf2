"""The answer table's lifecycle (`dynmx.app.tablestate`), by plain calls: staged, filling,
compiled; edits published during a compile; the store written once; illegal events raise."""

from __future__ import annotations

import pytest

from dynmx.app.tablestate import (
    EDIT_TRANSITIONS,
    STORE_TRANSITIONS,
    TABLE_TRANSITIONS,
    Edits,
    IllegalTransition,
    Store,
    Table,
    TableLifecycle,
)
from dynmx.errors import DynmxError

Life = TableLifecycle[str, str | None, str]


def _filling() -> Life:
    life: Life = TableLifecycle()
    life.served(pending=True)
    life.fill_started()
    return life


def test_every_state_of_every_part_has_a_row() -> None:
    assert set(TABLE_TRANSITIONS) == set(Table)
    assert set(EDIT_TRANSITIONS) == set(Edits)
    assert set(STORE_TRANSITIONS) == set(Store)


def test_a_new_lifecycle_has_no_table_no_edits_and_a_cold_store() -> None:
    life: Life = TableLifecycle()
    assert (life.table, life.edits, life.store) == (Table.NONE, Edits.IDLE, Store.COLD)


def test_a_first_table_with_zones_to_compile_is_staged() -> None:
    life: Life = TableLifecycle()
    life.served(pending=True)
    assert life.table is Table.STAGED


def test_a_first_table_with_every_zone_compiled_is_compiled() -> None:
    life: Life = TableLifecycle()
    life.served(pending=False)
    assert life.table is Table.COMPILED


def test_a_staged_table_is_due_a_fill() -> None:
    life: Life = TableLifecycle()
    life.served(pending=True)
    assert life.fill_due


def test_a_compiled_table_is_not_due_a_fill() -> None:
    life: Life = TableLifecycle()
    life.served(pending=False)
    assert not life.fill_due


def test_a_second_fill_does_not_start_while_one_runs() -> None:
    assert not _filling().fill_due


def test_a_swap_during_the_fill_leaves_the_fill_to_finish() -> None:
    life = _filling()
    life.served(pending=True)
    life.served(pending=False)
    assert life.table is Table.FILLING


def test_a_fill_that_compiled_everything_leaves_the_table_compiled() -> None:
    life = _filling()
    life.fill_ended(pending=False)
    assert life.table is Table.COMPILED


def test_a_fill_stopped_early_leaves_the_table_staged_for_the_next_fill() -> None:
    life = _filling()
    life.fill_ended(pending=True)
    assert life.table is Table.STAGED
    assert life.fill_due


def test_an_edit_that_stages_a_large_zone_takes_a_compiled_table_back_to_staged() -> None:
    life: Life = TableLifecycle()
    life.served(pending=False)
    life.served(pending=True)
    assert life.table is Table.STAGED


def test_the_first_edit_starts_a_round() -> None:
    life: Life = TableLifecycle()
    assert life.publish("a.", "v1", "w1") is True
    assert life.edits is Edits.QUEUED


def test_an_edit_while_one_waits_starts_no_second_round() -> None:
    life: Life = TableLifecycle()
    life.publish("a.", "v1", "w1")
    assert life.publish("b.", "v1", "w2") is False


def test_edits_waiting_together_are_taken_as_one_batch_with_their_waiters() -> None:
    life: Life = TableLifecycle()
    life.publish("a.", "v1", "w1")
    life.publish("b.", None, "w2")
    assert life.take() == ({"a.": "v1", "b.": None}, ["w1", "w2"])
    assert life.edits is Edits.COMPILING


def test_a_later_edit_of_a_zone_replaces_the_waiting_one_and_both_wait() -> None:
    life: Life = TableLifecycle()
    life.publish("a.", "v1", "w1")
    life.publish("a.", "v2", "w2")
    assert life.take() == ({"a.": "v2"}, ["w1", "w2"])


def test_an_edit_published_during_a_compile_waits_for_the_next_batch() -> None:
    life: Life = TableLifecycle()
    life.publish("a.", "v1", "w1")
    life.take()
    assert life.publish("b.", "v1", "w2") is False  # the running round takes it next
    assert life.edits is Edits.BEHIND
    assert life.round_ended() is True
    assert life.take() == ({"b.": "v1"}, ["w2"])


def test_a_round_with_nothing_published_meanwhile_ends_idle() -> None:
    life: Life = TableLifecycle()
    life.publish("a.", "v1", "w1")
    life.take()
    assert life.round_ended() is False
    assert life.edits is Edits.IDLE
    assert not life.waiting


def test_the_store_is_due_once_every_zone_is_compiled() -> None:
    life: Life = TableLifecycle()
    assert life.store_due(pending=False)


def test_the_store_is_not_due_while_zones_are_pending() -> None:
    life: Life = TableLifecycle()
    assert not life.store_due(pending=True)


def test_the_store_is_written_once_per_start() -> None:
    life: Life = TableLifecycle()
    life.stored()
    assert not life.store_due(pending=False)


def test_a_zone_added_or_removed_after_the_store_is_written_makes_it_due_again() -> None:
    life: Life = TableLifecycle()
    life.stored()
    life.zones_changed()
    assert life.store_due(pending=False)


def test_writing_the_store_twice_is_illegal() -> None:
    life: Life = TableLifecycle()
    life.stored()
    with pytest.raises(IllegalTransition, match="write is not allowed when Store is written"):
        life.stored()


def test_a_fill_before_any_table_is_illegal() -> None:
    life: Life = TableLifecycle()
    with pytest.raises(IllegalTransition, match="fill-start is not allowed when Table is none"):
        life.fill_started()


def test_a_fill_of_a_compiled_table_is_illegal() -> None:
    life: Life = TableLifecycle()
    life.served(pending=False)
    with pytest.raises(IllegalTransition):
        life.fill_started()


def test_ending_a_fill_that_never_started_is_illegal() -> None:
    life: Life = TableLifecycle()
    life.served(pending=True)
    with pytest.raises(IllegalTransition):
        life.fill_ended(pending=False)


def test_taking_a_batch_when_none_waits_is_illegal() -> None:
    life: Life = TableLifecycle()
    with pytest.raises(IllegalTransition, match="take is not allowed when Edits is idle"):
        life.take()


def test_ending_a_round_that_never_started_is_illegal() -> None:
    life: Life = TableLifecycle()
    life.publish("a.", "v1", "w1")
    with pytest.raises(IllegalTransition):
        life.round_ended()


def test_an_illegal_transition_leaves_the_state_as_it_was() -> None:
    life: Life = TableLifecycle()
    with pytest.raises(IllegalTransition):
        life.take()
    assert life.edits is Edits.IDLE


def test_an_illegal_transition_is_a_dynmx_error() -> None:
    assert issubclass(IllegalTransition, DynmxError)
