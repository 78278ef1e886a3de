"""``push`` (SGLang's disaggregation): decode reserves first, prefill writes into the reservation.

The decode side *reserves* blocks before prefill starts (FIFO, head-of-line, keeping
``reserved_decode_tokens`` of headroom); prefill writes into the reservation and frees its copy
at commit. Decode pays the prefill time as reserved HBM. With layer-wise streaming the transfer
starts with the prompt's last step and cannot end before that step's last layer is computed.
"""

from __future__ import annotations

from hetsim.kv.lifecycle import FREED, PREFILL
from hetsim.sim.handoff.base import Handoff
from hetsim.sim.instance import DecodeInstance, PrefillInstance
from hetsim.sim.state import Req

__all__ = ["Push"]


class Push(Handoff):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # requests whose KV streams layer by layer, with the attempt that streams it: a retried
        # request's new attempt must not be taken for the old one's stream
        self._streaming: dict[int, int] = {}

    def arrive(self, req: Req) -> None:
        self.dispatch.to_decode(req)

    def admit(self, d: DecodeInstance) -> None:
        """SGLang's pre-allocation queue: FIFO, stopping at the first request that does not fit
        with ``reserved_decode_tokens`` of headroom left."""
        headroom = d.blocks.blocks_for(self.lifecycle.reserved_decode_tokens)
        for req, need in self._fifo(d, headroom):
            self._reserve(req, d, need)
            self.dispatch.route_prefill(req)

    def last_step_started(self, req: Req, p: PrefillInstance, dt: float) -> None:
        """Layer-wise streaming: each layer's KV leaves as soon as the layer is computed, so the
        transfer starts with the last step; it cannot complete before the step's last layer
        (one layer's share of the bytes after the step ends)."""
        d = req.decode
        links = self.topology.path_links(p, d)
        last_layer = self._plan(p, d).network_bytes(req.input) / self.num_layers
        ready_at = self.env.now + dt + last_layer / min(link.bandwidth for link in links)
        self._streaming[req.id] = attempt = req.retries
        p.hand_over(req)
        self._receiving(req)
        self._send(req, p, d, links, lambda: self._written(req, p, d, ready_at, attempt))

    def prefill_finished(self, req: Req, p: PrefillInstance) -> None:
        if self._streaming.get(req.id) == req.retries:
            return  # already streaming since its last step began
        d = req.decode
        if not d.alive:
            self.recovery.recover(req, "its decode instance crashed before the KV was written")
            return
        p.hand_over(req)
        self._receiving(req)
        self._send(req, p, d, self.topology.path_links(p, d), lambda: self._written(req, p, d))

    def drop(self, req: Req) -> None:
        self._streaming.pop(req.id, None)

    def _written(
        self,
        req: Req,
        p: PrefillInstance,
        d: DecodeInstance,
        ready_at: float = 0.0,
        attempt: int | None = None,
    ) -> None:
        """The KV is in the reservation: prefill frees its copy and decode commits. A streamed
        transfer may end before the last layer is computed and waits for it; if meanwhile a
        crash restarted or ended the request, that wait ends quietly (the new attempt, if any,
        has its own transfer)."""
        if attempt is not None and not self.requests.current(req, attempt):
            return
        wait = ready_at - self.env.now
        if wait > 1e-15:
            self.env.timeout(wait).callbacks.append(
                lambda _e: self._written(req, p, d, 0.0, attempt)
            )
            return
        self._streaming.pop(req.id, None)
        p.release(req)
        self.ledger.mark(req, PREFILL, FREED)
        self._commit(req, d)
