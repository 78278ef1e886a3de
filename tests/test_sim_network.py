"""The fluid network: hand-computed finish times under max-min fair sharing, faults, accounting."""

import pytest
import simpy
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hetsim.sim.clock import processed_events
from hetsim.sim.network import Network, TransferFailed, TransferRecord


def make(*links):
    """A network and its links, each given as (name, bandwidth[, latency])."""
    env = simpy.Environment()
    net = Network(env)
    return env, net, [net.add_link(*spec) for spec in links]


def start_at(env, when, net, nbytes, hops, tag=None):
    """Start a transfer at time ``when``; returns a list that will hold the transfer."""
    box = []

    def proc():
        yield env.timeout(when)
        box.append(net.transfer(nbytes, hops, tag))

    env.process(proc())
    return box


def at(env, when, action):
    def proc():
        yield env.timeout(when)
        action()

    env.process(proc())


def end(transfer):
    assert transfer.ok, transfer.value
    return transfer.value.end


def test_lone_transfer_takes_bytes_over_bandwidth_plus_latency():
    env, net, (link,) = make(("nic", 100.0, 0.25))
    t = net.transfer(1000, [link], tag="req-1")
    env.run()
    assert t.value == TransferRecord(start=0, end=10.25, nbytes=1000, tag="req-1")


def test_two_hop_path_runs_at_slower_hop_plus_both_latencies():
    env, net, (x, y) = make(("pcie", 50.0, 0.1), ("nic", 200.0, 0.2))
    t = net.transfer(1000, [x, y])
    env.run()
    assert end(t) == pytest.approx(1000 / 50 + 0.3)


def test_zero_byte_transfer_completes_after_latency_alone():
    env, net, (x, y) = make(("a", 10.0, 0.5), ("b", 10.0, 0.25))
    t = net.transfer(0, [x, y])
    env.run()
    assert end(t) == 0.75


def test_two_equal_concurrent_transfers_on_a_shared_hop_take_twice_as_long():
    env, net, (link,) = make(("nic", 100.0, 0.5))
    a, b = net.transfer(1000, [link]), net.transfer(1000, [link])
    env.run()
    assert end(a) == pytest.approx(2 * 1000 / 100 + 0.5)
    assert end(b) == pytest.approx(2 * 1000 / 100 + 0.5)


def test_transfer_arriving_midway_shares_until_one_finishes():
    env, net, (link,) = make(("nic", 100.0))
    a = net.transfer(1000, [link])
    b = start_at(env, 4.0, net, 300, [link])
    env.run()
    # A alone for 4 s (600 left); both at 50 B/s: B done at 4 + 300/50 = 10 with A at 300 left;
    # A alone again at 100 B/s: 10 + 3 = 13
    assert end(b[0]) == pytest.approx(10.0)
    assert end(a) == pytest.approx(13.0)


def test_flow_bottlenecked_elsewhere_leaves_its_share_to_others():
    env, net, (x, y) = make(("x", 10.0), ("y", 100.0))
    a = net.transfer(100, [x, y])
    b = net.transfer(1800, [y])
    env.run(1.0)
    assert (a.rate, b.rate) == (pytest.approx(10.0), pytest.approx(90.0))
    env.run()
    # A: 100 / 10 = 10; B: 900 bytes by t=10, then the whole of Y for 900 more: 19
    assert end(a) == pytest.approx(10.0)
    assert end(b) == pytest.approx(19.0)


def test_three_flow_max_min_example():
    # L1 (10 B/s) carries f1 and f2, L2 (6 B/s) carries f2 and f3. L2 is the bottleneck
    # (share 3 < 5): f2 = f3 = 3; f1 takes what f2 leaves on L1: 7.
    env, net, (l1, l2) = make(("l1", 10.0), ("l2", 6.0))
    f1 = net.transfer(140, [l1])
    f2 = net.transfer(30, [l1, l2])
    f3 = net.transfer(60, [l2])
    env.run(1.0)
    assert [f.rate for f in (f1, f2, f3)] == pytest.approx([7.0, 3.0, 3.0])
    env.run()
    # f2 done at 30/3 = 10; then f1 has 70 left at 10 B/s (17), f3 has 30 left at 6 B/s (15)
    assert [end(f) for f in (f1, f2, f3)] == pytest.approx([17.0, 10.0, 15.0])


def test_link_down_pauses_progress_and_up_resumes_it():
    env, net, (link,) = make(("nic", 100.0))
    t = net.transfer(1000, [link])
    at(env, 2.0, link.down)
    at(env, 5.0, link.up)
    env.run(4.0)
    assert t.rate == 0.0
    assert t.bytes_delivered == pytest.approx(200.0)
    env.run()
    assert end(t) == pytest.approx(2.0 + 3.0 + 8.0)


def test_transfers_on_a_down_link_leave_their_share_on_other_hops():
    env, net, (x, y) = make(("x", 100.0), ("y", 100.0))
    x.down()
    a = net.transfer(500, [x, y])
    b = net.transfer(1000, [y])
    env.run(1.0)
    assert (a.rate, b.rate) == (0.0, 100.0)
    env.run()
    assert end(b) == pytest.approx(10.0)
    assert not a.triggered  # paused, not failed


def test_degraded_link_slows_by_exactly_its_factor():
    env, net, (link,) = make(("nic", 100.0))
    t = net.transfer(1000, [link])
    at(env, 2.0, lambda: link.set_bandwidth_factor(0.25))
    env.run()
    assert end(t) == pytest.approx(2.0 + 800 / 25)
    assert link.factor == 0.25


def test_set_bandwidth_replans_at_the_new_rate():
    env, net, (link,) = make(("nic", 100.0))
    t = net.transfer(1000, [link])
    at(env, 2.0, lambda: net.set_bandwidth(link, 50.0))
    env.run()
    assert end(t) == pytest.approx(2.0 + 800 / 50)


def test_fail_transfers_fails_events_and_releases_bandwidth_to_others():
    env, net, (x, y) = make(("x", 100.0), ("y", 100.0))
    a = net.transfer(1000, [x, y])
    b = net.transfer(1000, [y])
    caught = []

    def waiter():
        try:
            yield a
        except TransferFailed as exc:
            caught.append((env.now, exc.reason))

    env.process(waiter())
    at(env, 4.0, lambda: net.fail_transfers(x, "x crashed"))
    env.run()
    assert caught == [(4.0, "x crashed")]
    assert a.bytes_delivered == pytest.approx(200.0)
    # B: 200 bytes by t=4 at 50 B/s, then 800 alone at 100 B/s
    assert end(b) == pytest.approx(12.0)
    assert y.bytes_carried == pytest.approx(1200.0)
    assert x.active_transfers == 0


def test_fail_transfers_catches_transfers_still_in_their_latency():
    env, net, (link,) = make(("nic", 100.0, 1.0))
    t = net.transfer(1000, [link])
    t.defused = True
    assert net.fail_transfers(link, "gone") == [t]
    env.run()
    assert not t.ok and t.value.reason == "gone"
    assert link.bytes_carried == 0.0


def test_abort_fails_one_transfer_and_frees_its_share():
    env, net, (link,) = make(("nic", 100.0))
    a, b = net.transfer(1000, [link]), net.transfer(1000, [link])
    at(env, 4.0, lambda: net.abort(a))
    env.run()  # nobody waits for A: an aborted transfer does not crash the simulation
    assert not a.ok and isinstance(a.value, TransferFailed) and a.value.reason == "aborted"
    assert end(b) == pytest.approx(12.0)
    assert net.abort(b) is False


def test_abort_during_latency_never_uses_bandwidth():
    env, net, (link,) = make(("nic", 100.0, 2.0))
    a = net.transfer(1000, [link])
    b = net.transfer(1000, [link])
    net.abort(a)
    env.run()
    assert end(b) == pytest.approx(12.0)
    assert link.bytes_carried == pytest.approx(1000.0)


def test_snapshot_reports_in_flight_bytes_and_time_weighted_utilisation():
    env, net, (link, idle) = make(("nic", 100.0), ("spare", 10.0))
    net.transfer(1000, [link])
    env.run(5.0)
    snap = net.snapshot()
    assert snap["nic"]["bytes_in_flight"] == pytest.approx(500.0)
    assert snap["nic"]["active_transfers"] == 1
    assert snap["nic"]["utilisation_since_start"] == pytest.approx(1.0)
    assert snap["spare"] == {
        "bytes_in_flight": 0.0,
        "active_transfers": 0,
        "utilisation_since_start": 0.0,
        "bytes_carried": 0.0,
    }
    env.run(20.0)  # busy 10 s out of 20
    assert net.snapshot()["nic"]["utilisation_since_start"] == pytest.approx(0.5)


def test_bytes_carried_equals_completed_bytes_plus_partial_failed_ones():
    env, net, (x, y, z) = make(("x", 30.0, 0.1), ("y", 70.0), ("z", 55.0, 0.2))
    paths = [[x, y], [y], [y, z], [x, z], [z]]
    boxes = [start_at(env, 0.7 * i, net, 100 + 37 * i, paths[i % 5]) for i in range(20)]
    at(env, 6.3, lambda: [t.__setattr__("defused", True) for t in net.fail_transfers(z, "z")])
    env.run()
    transfers = [box[0] for box in boxes]
    for link in (x, y, z):
        through = [t for t in transfers if link in t.hops]
        expected = sum(t.nbytes if t.ok else t.bytes_delivered for t in through)
        assert link.bytes_carried == pytest.approx(expected, rel=1e-9)
    assert 0 < sum(not t.ok for t in transfers) < len(transfers)


def test_invalid_transfers_and_factors_are_refused():
    env, net, (link,) = make(("nic", 100.0))
    with pytest.raises(ValueError, match="at least one hop"):
        net.transfer(10, [])
    with pytest.raises(ValueError, match="at most once"):
        net.transfer(10, [link, link])
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        link.set_bandwidth_factor(0.0)
    with pytest.raises(ValueError, match="already exists"):
        net.add_link("nic", 1.0)


LINKS = [("a", 100.0, 0.01), ("b", 40.0, 0.0), ("c", 250.0, 0.002), ("d", 75.0, 0.05)]

transfer_specs = st.lists(
    st.tuples(
        st.floats(0.0, 20.0),  # start time
        st.floats(0.0, 5000.0),  # bytes
        st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True),  # path
    ),
    min_size=1,
    max_size=40,
)


def simulate(specs):
    env, net, links = make(*LINKS)
    boxes = [start_at(env, s, net, n, [links[i] for i in path]) for s, n, path in specs]
    env.run()
    return links, [box[0] for box in boxes]


@settings(max_examples=60, deadline=None)
@given(transfer_specs)
def test_random_transfers_complete_no_sooner_than_physics_allows(specs):
    links, transfers = simulate(specs)
    assert all(t.ok for t in transfers)
    for t in transfers:
        alone = t.nbytes / min(h.bandwidth for h in t.hops) + sum(h.latency for h in t.hops)
        assert t.value.duration >= alone * (1 - 1e-9) - 1e-12
    first = min(t.value.start for t in transfers)
    last = max(t.value.end for t in transfers)
    for link in links:
        load = sum(t.nbytes for t in transfers if link in t.hops)
        assert last - first >= load / link.bandwidth * (1 - 1e-9) - 1e-12
        assert link.bytes_carried == pytest.approx(load, rel=1e-9, abs=1e-6)
    again = [(t.value.start, t.value.end) for t in simulate(specs)[1]]
    assert again == [(t.value.start, t.value.end) for t in transfers]


def test_the_fastest_a_path_can_carry_bytes_is_latency_plus_the_slowest_hop():
    """``Network.fastest`` (the hint a decode run plans its end by) is a lone transfer's
    duration: here 1,000 B at 50 B/s plus 0.1 s and 0.2 s of latency."""
    env, net, (x, y) = make(("pcie", 50.0, 0.1), ("nic", 200.0, 0.2))
    assert net.fastest(1000, [x, y]) == 1000 / 50 + 0.3
    t = net.transfer(1000, [x, y])
    env.run()
    assert end(t) == pytest.approx(net.fastest(1000, [x, y]), rel=1e-12)


def test_a_landed_transfers_waiters_run_in_its_completion_event():
    """Waiters of a flowing transfer run when its last byte lands, with its record, in the
    completion event itself: no event follows for them."""
    env, net, (link,) = make(("nic", 100.0, 0.0))
    t = net.transfer(1000, [link], tag="r")
    seen = []
    t.callbacks.append(lambda event: seen.append((env.now, event.value, event.processed)))
    env.run()
    assert seen == [(10.0, TransferRecord(0, 10.0, 1000, "r"), True)]
    assert processed_events(env) == 1  # the completion timeout alone (no latency to wait)


def test_a_transfer_alone_on_the_network_takes_one_event():
    """Quiet: its join and its end are known when it starts, so one timeout stands for the
    latency's and the completion's; its record and the link's accounting are those of the two
    events (here 1,000 B at 100 B/s after 0.25 s)."""
    results = []
    for quiet in (True, False):
        env = simpy.Environment()
        net = Network(env, quiet=quiet)
        link = net.add_link("nic", 100.0, 0.25)
        t = net.transfer(1000, [link], tag="r")
        env.run()
        results.append((t.value, link.bytes_carried, link.utilisation, processed_events(env)))
    record = TransferRecord(0, 10.25, 1000, "r")
    assert results[0][:3] == results[1][:3] == (record, 1000, 10 / 10.25)  # latency is idle
    assert (results[0][3], results[1][3]) == (1, 2)


#: paths over LINKS: alone, sharing a hop, one without latency
PATHS = [(0,), (1,), (2,), (3,), (0, 2), (1, 3), (0, 1, 2)]
#: what a script does at a time: start a transfer (bytes, path), abort the i-th transfer
#: started, read every link's progress, change a link (factor, down, up, fail its transfers)
script_steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 2.0]),
        st.one_of(
            st.tuples(st.just("start"), st.integers(0, 3000), st.sampled_from(PATHS)),
            st.tuples(st.just("abort"), st.integers(0, 9)),
            st.tuples(st.just("read")),
            st.tuples(st.just("factor"), st.integers(0, 2), st.sampled_from([0.25, 0.5, 1.0])),
            st.tuples(st.sampled_from(["down", "up", "fail"]), st.integers(0, 2)),
        ),
    ),
    min_size=1,
    max_size=30,
)


def run_script(steps, quiet):
    """Every outcome of the script: each transfer's end or failure (time, reason), every read,
    and each link's final accounting."""
    env = simpy.Environment()
    net = Network(env, quiet=quiet)
    links = [net.add_link(*spec) for spec in LINKS]
    transfers, seen = [], []

    def act(op):
        kind = op[0]
        if kind == "start":
            t = net.transfer(op[1], [links[i] for i in op[2]])
            t.defused = True
            t.callbacks.append(
                lambda e: seen.append(("end", env.now, e.value if e.ok else e.value.reason))
            )
            transfers.append(t)
        elif kind == "abort" and op[1] < len(transfers):
            seen.append(("abort", env.now, net.abort(transfers[op[1]])))
        elif kind == "read":
            seen.append(("read", env.now, net.snapshot()))
        elif kind == "factor":
            links[op[1]].set_bandwidth_factor(op[2])
        elif kind == "fail":
            victims = net.fail_transfers(links[op[1]])
            seen.append(("fail", env.now, [transfers.index(v) for v in victims]))
        elif kind in ("down", "up"):
            getattr(links[op[1]], kind)()

    for when, op in steps:
        at(env, when, lambda op=op: act(op))
    env.run(until=1e6)
    return seen, net.snapshot(), [t.rate for t in transfers]


@settings(max_examples=150, deadline=None)
@given(script_steps)
# a script event due at the quiet transfer's join: which of the two goes first decides the
# order of the two transfers' flows (and of their ends at 2.51)
@example([(0.0, ("start", 250, (0,))), (0.01, ("start", 100, (1,)))])
def test_quiet_transfers_change_nothing_but_the_events(steps):
    """Whatever touches the network while a transfer is quiet (another transfer, an abort, a
    read, a bandwidth change, a link down or up or failed), every outcome and every byte of
    accounting is the same float as with two events per transfer."""
    assert run_script(steps, quiet=True) == run_script(steps, quiet=False)


def test_a_woken_quiet_transfer_joins_in_its_timeouts_place_among_same_time_events():
    """A starts at 0 (quiet, joins at 0.5); at 0.1 something schedules a look at A for 0.5;
    B's start at 0.2 wakes A. At 0.5 A's latency timeout, scheduled at 0, goes first, as it
    does with two events per transfer: the look sees A flowing."""

    def look(quiet):
        env = simpy.Environment()
        net = Network(env, quiet=quiet)
        link = net.add_link("nic", 100.0, 0.5)
        a = net.transfer(1000, [link])
        looks = []
        at(env, 0.1, lambda: env.timeout(0.4).callbacks.append(lambda _: looks.append(a.rate)))
        at(env, 0.2, lambda: net.transfer(10, [link]))
        env.run()
        return looks

    assert look(True) == look(False) == [100.0]
