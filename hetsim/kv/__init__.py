"""The KV cache as a resource: blocks with owners, prefix caches, and the Runtime KV State that
crosses the prefill/decode boundary with its portability verdicts. Pure bookkeeping — no simpy
here; the simulator drives it.
"""

from hetsim.kv.blocks import BlockPool, BlockState
from hetsim.kv.portability import Conversion, Mismatch, TransferPlan, Verdict
from hetsim.kv.prefix_cache import PrefixCache
from hetsim.kv.state import KVState

# `portability()` itself stays in hetsim.kv.portability: re-exporting it here would shadow the
# module of the same name
__all__ = [
    "BlockPool",
    "BlockState",
    "PrefixCache",
    "KVState",
    "Verdict",
    "Conversion",
    "Mismatch",
    "TransferPlan",
]
