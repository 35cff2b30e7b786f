"""Tests for domain.statuses: codes stay stable, the transition table is forward-only."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.statuses import PRE_SEND, TERMINAL, TRANSITIONS, MessageStatus, can_move, rank, sources

S = MessageStatus
WAITING = {S.QUEUED, S.DELAYED, S.PAUSED}
# Every event a message meets proposes a target status: enqueue, window closes, task pauses, provider accepts,
# delivery reports (also late and duplicated), send errors, cancel, skip, validity or expiry sweep…
events = st.lists(st.sampled_from(list(MessageStatus)), max_size=40)


def apply(status: MessageStatus, event: MessageStatus) -> MessageStatus:
    return event if can_move(status, event) else status


def run(start: MessageStatus, proposed: list[MessageStatus]) -> list[MessageStatus]:
    """The statuses a message goes through: `start`, then one per event."""
    return list(itertools.accumulate(proposed, apply, initial=start))


def test_codes_are_stable() -> None:
    assert [(s.value, s.code) for s in MessageStatus] == [
        ('CREATED', 1), ('QUEUED', 2), ('DELAYED', 3), ('PAUSED', 4), ('SENT', 5), ('PENDING', 6),
        ('DELIVERED', 7), ('READ', 8), ('UNDELIVERED', 9), ('ERROR', 10), ('SKIPPED', 11), ('CANCELED', 12),
        ('EXPIRED', 13)]
    assert all(MessageStatus.from_code(s.code) is s and s.description for s in MessageStatus)


def expected_targets(old: MessageStatus) -> set[MessageStatus]:
    """The rules as the issue words them, written out independently of the table."""
    give_up = {S.SKIPPED, S.CANCELED, S.EXPIRED, S.ERROR}
    reported = {S.PENDING, S.DELIVERED, S.READ, S.UNDELIVERED}
    return {
        S.CREATED: WAITING | give_up,
        S.QUEUED: (WAITING - {S.QUEUED}) | give_up | {S.SENT} | reported,
        S.DELAYED: (WAITING - {S.DELAYED}) | give_up,
        S.PAUSED: (WAITING - {S.PAUSED}) | give_up,
        S.SENT: reported | {S.ERROR, S.EXPIRED},
        S.PENDING: {S.DELIVERED, S.READ, S.UNDELIVERED, S.EXPIRED},
        S.DELIVERED: {S.READ},
    }.get(old, set())


@pytest.mark.parametrize('old', list(MessageStatus))
def test_table_follows_the_rules(old: MessageStatus) -> None:
    assert TRANSITIONS[old] == expected_targets(old)
    assert {new for new in MessageStatus if can_move(old, new)} == expected_targets(old)
    assert all(old in sources(new) for new in TRANSITIONS[old])
    assert not TRANSITIONS[old] or old not in TERMINAL or (old, TRANSITIONS[old]) == (S.DELIVERED, {S.READ})


@pytest.mark.parametrize(('old', 'new'), [(o, n) for o in MessageStatus for n in TRANSITIONS[o]])
def test_every_move_raises_the_rank_except_among_waiting_statuses(old: MessageStatus, new: MessageStatus) -> None:
    if old in WAITING and new in WAITING:
        assert rank(old) == rank(new)
    else:
        assert rank(new) > rank(old)


def test_ranks() -> None:
    assert max(rank(s) for s in PRE_SEND) < rank(S.SENT) < rank(S.PENDING) < rank(S.DELIVERED) < rank(S.READ)
    assert all(rank(S.CREATED) < rank(s) for s in WAITING)
    assert all(rank(s) > rank(S.PENDING) for s in TERMINAL)


@given(start=st.sampled_from(list(MessageStatus)), proposed=events)
def test_random_events_never_move_a_message_back(start: MessageStatus, proposed: list[MessageStatus]) -> None:
    statuses = run(start, proposed)
    for old, new in itertools.pairwise(statuses):
        assert rank(new) >= rank(old)
        if old in TERMINAL and new != old:
            assert (old, new) == (S.DELIVERED, S.READ)
        if old not in PRE_SEND:
            assert new not in PRE_SEND


@given(start=st.sampled_from(list(MessageStatus)), proposed=events)
def test_the_expiry_sweep_always_ends_a_message(start: MessageStatus, proposed: list[MessageStatus]) -> None:
    """However events interleave, the final expiry sweep (any non-terminal → EXPIRED) leaves a terminal status."""
    before = run(start, proposed)[-1]
    after = apply(before, S.EXPIRED)
    assert after in TERMINAL
    assert after == (before if before in TERMINAL else S.EXPIRED)


def test_late_delivered_after_undelivered_is_ignored() -> None:
    assert run(S.CREATED, [S.QUEUED, S.SENT, S.UNDELIVERED, S.DELIVERED])[-1] == S.UNDELIVERED


def test_duplicate_report_changes_nothing() -> None:
    statuses = run(S.SENT, [S.DELIVERED, S.DELIVERED, S.PENDING, S.SENT])
    assert statuses == [S.SENT, S.DELIVERED, S.DELIVERED, S.DELIVERED, S.DELIVERED]
    assert not can_move(S.DELIVERED, S.DELIVERED)


def test_sent_never_goes_back_to_queued() -> None:
    assert not can_move(S.SENT, S.QUEUED)
    assert not any(can_move(S.SENT, s) for s in PRE_SEND)


def test_report_overtaking_sent_and_read_after_delivered() -> None:
    assert run(S.QUEUED, [S.DELIVERED, S.SENT, S.READ]) == [S.QUEUED, S.DELIVERED, S.DELIVERED, S.READ]


def test_waiting_statuses_move_among_each_other() -> None:
    assert run(S.CREATED, [S.DELAYED, S.QUEUED, S.PAUSED, S.DELAYED, S.QUEUED, S.SENT])[-1] == S.SENT
    assert not can_move(S.CREATED, S.SENT)
    assert not can_move(S.QUEUED, S.CREATED)
