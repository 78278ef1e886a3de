"""Block accounting of one instance: states as an enum, counts that never go wrong silently."""

import pytest

from hetsim.kv.blocks import BlockPool, BlockState, KVAccountingError


def test_each_block_state_names_the_pool_counter_it_moves():
    pool = BlockPool(capacity=10, page_tokens=16)
    for n, state in enumerate(BlockState, start=1):
        pool.allocate(0.0, n, state)
    assert {state: getattr(pool, state) for state in BlockState} == {
        BlockState.USED: 1,
        BlockState.RESERVED: 2,
        BlockState.HELD: 3,
    }
    assert pool.allocated == 6 and pool.free == 4


def test_moving_blocks_between_states_keeps_the_total_and_integrates_block_seconds():
    pool = BlockPool(capacity=8, page_tokens=16)
    pool.allocate(0.0, 4)
    pool.move(2.0, 4, BlockState.USED, BlockState.HELD)
    pool.release(5.0, 4, BlockState.HELD)
    assert pool.allocated == 0 and pool.peak == 4
    assert pool.used_block_s == 8.0 and pool.held_block_s == 12.0


def test_a_state_given_as_a_plain_string_is_refused():
    # the hot path compares states by identity: a string that merely spells one must not pass
    pool = BlockPool(capacity=8, page_tokens=16)
    with pytest.raises(KVAccountingError, match="not a BlockState"):
        pool.allocate(0.0, 1, "reserved")


def test_releasing_more_than_a_state_holds_raises():
    pool = BlockPool(capacity=8, page_tokens=16)
    pool.allocate(0.0, 2, BlockState.RESERVED)
    with pytest.raises(KVAccountingError):
        pool.release(1.0, 3, BlockState.RESERVED)


def test_block_states_serialise_as_their_names():
    assert [str(s) for s in BlockState] == ["used", "reserved", "held"]
