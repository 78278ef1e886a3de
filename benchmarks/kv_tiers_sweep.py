"""TTFT of the 90%-prefix scenario as its host DRAM and SSD tiers grow or shrink, with the
per-tier hit shares and the reuse lost to eviction that explain it (issue #15's acceptance).

Run from the repository root: ``python benchmarks/kv_tiers_sweep.py`` (about 20 s on two
cores). Prints a Markdown table; per-tier hit shares are of all simulated prompt tokens
(warm-up included), the reuse split of the measured requests.
"""

from __future__ import annotations

import hetsim

SCENARIO = "scenarios/kv-tiers-prefix90.yaml"
DRAM, SSD = "kv.tiers.0", "kv.tiers.1"  # host DRAM per instance, NVMe shared by the pool
CASES = [
    ("HBM only", ["kv.prefix_cache.tiers=[hbm]"]),
    ("16 GiB / 128 GiB", [f"{DRAM}.capacity=16 GiB", f"{SSD}.capacity=128 GiB"]),
    ("64 GiB / 128 GiB", [f"{DRAM}.capacity=64 GiB", f"{SSD}.capacity=128 GiB"]),
    ("256 GiB / 128 GiB", [f"{SSD}.capacity=128 GiB"]),
    ("16 GiB / 512 GiB", [f"{DRAM}.capacity=16 GiB", f"{SSD}.capacity=512 GiB"]),
    ("256 GiB / 512 GiB", [f"{SSD}.capacity=512 GiB"]),
    ("16 GiB / 4 TiB", [f"{DRAM}.capacity=16 GiB"]),
    ("256 GiB / 4 TiB (as bundled)", []),
    ("256 GiB / 4 TiB, write_through", ["kv.prefix_cache.write_policy=write_through"]),
    (
        "16 GiB / 4 TiB, one 7 GB/s drive",
        [f"{DRAM}.capacity=16 GiB", f"{SSD}.bandwidth=7 GB/s", f"{SSD}.write_bandwidth=4 GB/s"],
    ),
]
TIERS = ("hbm", "host_dram", "local_ssd")


def row(name: str, overrides: list[str]) -> str:
    scenario = hetsim.load_scenario(SCENARIO, overrides=overrides)
    s = hetsim.simulate(scenario, sample_interval=None).summary
    r = s.prefix_reuse
    prompt = r.prompt_tokens
    by_tier = {t.tier: t for t in s.kv_tiers}
    hits = " / ".join(f"{by_tier[t].hit_share:.1%}" if t in by_tier else "–" for t in TIERS)
    return (
        f"| {name} | {s.ttft_s.mean:.3f} / {s.ttft_s.p90:.3f} s | {r.hit_tokens / prompt:.1%} "
        f"| {hits} | {r.lost_to_eviction_tokens / prompt:.1%} "
        f"| {r.lost_to_routing_tokens / prompt:.1%} |"
    )


def main() -> None:
    print(
        "| DRAM per instance / SSD (pool) | TTFT mean / p90 | hit | hit from HBM / DRAM / SSD "
        "| lost: eviction | lost: routing |"
    )
    print("|---|---|---|---|---|---|")
    for name, overrides in CASES:
        print(row(name, overrides), flush=True)


if __name__ == "__main__":
    main()
