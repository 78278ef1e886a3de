"""The simulator's event count: what simpy processed, not what was scheduled and taken back."""

import simpy

from hetsim.sim.clock import cancel, processed_events


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
