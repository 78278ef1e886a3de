"""``pull`` (vLLM's NIXL connector): decode reads the KV from prefill, which lends it meanwhile.

Prefill computes into its own blocks and then *holds* them (lent); the decode side admits the
request when it has room (FIFO), reserves blocks, reads the KV, and prefill frees its copy when
the read completes. Prefill pays decode's queueing as held HBM. A lost "read done" notification
leaves the blocks held until the lease runs out; a read after the lease expired returns whatever
now lives in those blocks (a silent corruption, counted).
"""

from __future__ import annotations

from hetsim.kv.blocks import BlockState
from hetsim.kv.lifecycle import EXPIRED, FREED, HELD, PREFILL
from hetsim.sim.handoff.base import Handoff
from hetsim.sim.instance import DecodeInstance, PrefillInstance
from hetsim.sim.state import Req

__all__ = ["Pull"]


class Pull(Handoff):
    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:
        p.lend(req)
        self.ledger.mark(req, PREFILL, HELD)
        self.dispatch.to_decode(req)

    def admit(self, d: DecodeInstance) -> None:
        for req, need in self._fifo(d):
            self._reserve(req, d, need)
            p = req.prefill
            if self.ledger.state(req.id, PREFILL) is EXPIRED:
                # the producer's lease ran out and it freed the blocks: this read returns
                # whatever now lives there — the silent corruption the engines warn about
                req.corrupted = True
                self.stats.count("silent_corruptions")
            self._receiving(req)
            self._send(
                req,
                p,
                d,
                self.topology.path_links(p, d),
                lambda r=req, p=p, d=d: self._read_done(r, p, d),
            )

    def _read_done(self, req: Req, p: PrefillInstance, d: DecodeInstance) -> None:
        if self.faults.notification_lost(req):
            # decode read the KV but prefill never hears: it frees at lease expiry
            recovery = self.recovery
            recovery.release_later(p, p.disown(req), BlockState.HELD, recovery.lease_remaining)
        else:
            p.release(req)
            if self.ledger.state(req.id, PREFILL) is HELD:
                self.ledger.mark(req, PREFILL, FREED)
        self._commit(req, d)
