"""dynmx.cli.edits by plain calls: record data as zone-file text, batch lines, and the UPDATE
message with a prerequisite per removal (RFC 2136 §2.4.1, §2.4.4)."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import pytest

from dynmx.cli.edits import (
    build_update,
    edit_from_command,
    needs_check,
    parse_batch,
    parse_batch_line,
    rdata_text,
)
from dynmx.errors import CommandError

ORIGIN = dns.name.from_text("example.test.")
TXT = dns.rdatatype.TXT


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (["v=spf1 mx -all"], '"v=spf1 mx -all"'),  # one shell argument with spaces: one string
        (["v=spf1", "mx", "-all"], "v=spf1 mx -all"),  # unquoted words: a string each
        (['"a b" c'], '"a b" c'),  # quotes given: zone-file text as it is
    ],
)
def test_txt_argument_with_spaces_and_no_quote_is_one_string(words: list[str], text: str) -> None:
    assert rdata_text(TXT, words) == text


def test_other_types_join_words_as_a_zone_file_line() -> None:
    edit = edit_from_command("add", "example.test", "MX", 3600, [["10", "mx1"]], ORIGIN)
    assert [r.to_text() for r in edit.rdatas] == ["10 mx1.example.test."]


def test_batch_line_with_ttl_class_and_quoted_data() -> None:
    line = parse_batch_line('add example.test 1h IN TXT "v=spf1 mx -all"', "f:1")
    assert line is not None and (line.ttl, line.rdtype, line.data) == (3600, TXT, '"v=spf1 mx -all"')
    assert line.edit(ORIGIN, 300).rdatas[0].to_text() == '"v=spf1 mx -all"'


def test_batch_skips_comments_and_blank_lines_and_names_a_bad_line() -> None:
    with pytest.raises(CommandError, match=r"^f:4: unknown change 'ad'"):
        parse_batch("# c\n\nadd a.example.test A 192.0.2.1\nad b.example.test A 192.0.2.2\n", "f")


def test_removals_carry_prerequisites_unless_the_message_adds_them() -> None:
    edits = [
        parse_batch_line("add new.example.test A 192.0.2.1", "f:1"),
        parse_batch_line("rm new.example.test A 192.0.2.1", "f:2"),
        parse_batch_line("rm old.example.test TXT", "f:3"),
        parse_batch_line("rm gone.example.test", "f:4"),
    ]
    records = [line.edit(ORIGIN, 300) for line in edits if line is not None]
    assert [e.where for e in needs_check(records)] == ["f:3", "f:4"]
    prerequisites = {
        (r.name.to_text(), dns.rdatatype.to_text(r.rdtype))
        for r in build_update(records, ORIGIN).prerequisite
    }
    assert prerequisites == {("old.example.test.", "TXT"), ("gone.example.test.", "ANY")}


def test_several_sets_of_one_rrset_replace_it_once() -> None:
    lines = [parse_batch_line(f"set www.example.test A 192.0.2.{i}", f"f:{i}") for i in (1, 2)]
    update = build_update([line.edit(ORIGIN, 300) for line in lines if line is not None], ORIGIN)
    deletes = [r for r in update.update if r.deleting is not None]
    assert len(deletes) == 1 and sum(len(r) for r in update.update if r.deleting is None) == 2
