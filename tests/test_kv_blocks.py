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


def test_a_runs_blocks_taken_in_one_call_add_up_as_one_call_per_step():
    """``allocate_steps`` books a decode run's blocks, each at the end of the step before:
    the counters, block-second integrals and peak are those of one ``allocate`` per step."""
    times = [0.5, 1.25, 2.0, 2.0, 3.5]  # step ends
    counts = [0, 2, 0, 3, 1]  # the first step's blocks were taken before the run
    one_call, per_step = BlockPool(capacity=12, page_tokens=16), BlockPool(12, 16)
    for pool in (one_call, per_step):
        pool.allocate(0.0, 4)
        pool.move(0.25, 1, BlockState.USED, BlockState.HELD)
    one_call.allocate_steps(times, counts, 0, 4)
    for s in range(1, 4):
        if counts[s]:
            per_step.allocate(times[s - 1], counts[s])
    assert (one_call.used, one_call.held, one_call.allocated, one_call.peak) == (8, 1, 9, 9)
    for name in ("used_block_s", "held_block_s", "reserved_block_s", "_last_t"):
        assert getattr(one_call, name) == getattr(per_step, name)
    # by hand: 4 used blocks over 0..0.25, 3 over 0.25..0.5, 5 over 0.5..2; 1 held over 0.25..2
    assert one_call.used_block_s == 4 * 0.25 + 3 * 0.25 + 5 * 1.5
    assert one_call.held_block_s == 1.75
    with pytest.raises(KVAccountingError):  # 3 blocks free
        one_call.allocate_steps([9.0, 9.5], [0, 4], 0, 2)
