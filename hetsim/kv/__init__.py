"""The KV cache as a resource: blocks with owners, prefix caches, and (later) the Runtime KV State
that crosses the prefill/decode boundary. Pure bookkeeping — no simpy here; the simulator drives it.
"""

from hetsim.kv.blocks import BlockPool
from hetsim.kv.prefix_cache import PrefixCache

__all__ = ["BlockPool", "PrefixCache"]
