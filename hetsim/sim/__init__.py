"""The discrete-event simulation of a serving system, built on simpy.

One concept per module; parts talk through the narrow ports of :mod:`~hetsim.sim.ports`, and
only :mod:`hetsim.simulation` imports the engine:

* ``engine`` — the environment and the run loop; wires the parts below.
* ``ports`` — run counters, the KV-ownership ledger, and the calls parts make upward.
* ``state`` — a request in flight and the columnar log of ended requests.
* ``topology`` — pools → instances, and the links of every hop, path and tier.
* ``instance/`` — prefill, decode and colocated step loops on a shared base; the decode batch.
* ``scheduler`` — the chunked-prefill packing rule, shared with the planner's screen.
* ``book`` — requests in the system: arrival, current attempt, completion or failure.
* ``dispatch`` / ``router`` / ``prefix`` — which instance serves the next phase (the pool's
  routing policy), and which prompt tokens its prefix cache spares.
* ``handoff/`` — the lifecycle protocols (pull, push, store, colocated), each owning its KV
  block transitions; shared transfer mechanics in ``base``.
* ``network`` — multi-hop links with max-min fair sharing.
* ``recovery`` / ``faults`` — crashes, retries, leases; the fault schedule and random draws.
* ``swap`` — preempted sequences' KV to host memory and back.
* ``sampler`` — per-instance and per-link time series, bounded in points (the interval doubles).
* ``horizon`` — how far the simulated clock may go; absurd inputs stop with their cause named.

Nothing here reads YAML; parts take resolved ``hetsim.spec`` objects and a ``simpy.Environment``.
"""
