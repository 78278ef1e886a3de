"""The simulator's event count: what simpy processed, not what was scheduled and taken back."""

import simpy

from hetsim.sim.clock import cancel, processed_events, reserve, schedule_reserved


def test_an_event_taken_out_of_the_queue_is_neither_run_nor_counted():
    env = simpy.Environment()
    fired = []
    keep, drop = env.timeout(1.0), env.timeout(2.0)
    keep.callbacks.append(lambda _: fired.append("keep"))
    drop.callbacks.append(lambda _: fired.append("drop"))
    assert cancel(env, drop)
    assert not cancel(env, drop)  # not queued any more
    env.run()
    assert fired == ["keep"] and env.now == 1.0
    assert processed_events(env) == 1


def test_a_reserved_number_keeps_its_place_and_counts_only_once_scheduled():
    """An event scheduled with a number reserved earlier runs where a timeout made then would
    have, before a same-time event scheduled in between; a number never used counts as no
    event."""
    env = simpy.Environment()
    fired = []
    early = reserve(env)
    env.timeout(1.0).callbacks.append(lambda _: fired.append("later"))
    reserve(env)  # never scheduled
    event = simpy.Event(env)
    event.callbacks.append(lambda _: fired.append("reserved"))
    schedule_reserved(env, event, 1.0, early)
    env.run()
    assert fired == ["reserved", "later"]
    assert processed_events(env) == 2
