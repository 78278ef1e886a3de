"""The discrete-event simulation of a serving system, built on simpy.

One concept per module: :mod:`hetsim.sim.network` moves KV bytes over multi-hop links with
max-min fair sharing. Nothing here reads YAML; components take plain numbers (or resolved
``hetsim.spec`` objects) and a ``simpy.Environment``.
"""
