"""Synthetic generators, checked statistically over 100k seeded requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from hetsim.spec.workload import LengthSpec, WorkloadSpec
from hetsim.workload import RequestChunk, iter_requests, load_requests
from hetsim.workload.synthetic import lognormal_params

DATA = Path(__file__).parent / "data"
N = 100_000


def synthetic(**fields) -> WorkloadSpec:
    spec = {"rate": "5.0 req/s", "requests": N, "input_tokens": 1000, "output_tokens": 100}
    spec.update(fields)
    return WorkloadSpec(synthetic=spec)


def generate(seed: int = 0, chunk_size: int = 65536, **fields) -> RequestChunk:
    return load_requests(synthetic(**fields), DATA, seed, chunk_size)


def rate_and_cv(r: RequestChunk) -> tuple[float, float]:
    gaps = np.diff(r.arrival_s)
    return len(r) / (r.arrival_s[-1] - r.arrival_s[0]), float(gaps.std() / gaps.mean())


def hit_share(r: RequestChunk, block: int = 512) -> float:
    """Share of prompt tokens in blocks an earlier request already had (plain Python)."""
    seen: set[int] = set()
    hit = 0
    lengths = r.input_tokens.tolist()
    offsets = r.hash_offsets.tolist()
    ids = r.hash_ids.tolist()
    for i, length in enumerate(lengths):
        mine = ids[offsets[i] : offsets[i + 1]]
        for j, block_id in enumerate(mine):
            if block_id in seen:
                hit += min(block, length - block * j)
        seen.update(mine)
    return hit / sum(lengths)


def test_poisson_rate_and_cv():
    r = generate(arrival="poisson", rate="5 req/s")
    rate, cv = rate_and_cv(r)
    assert len(r) == N and r.arrival_s[0] == 0.0
    assert rate == pytest.approx(5.0, rel=0.02)
    assert cv == pytest.approx(1.0, rel=0.03)
    assert np.all(np.diff(r.arrival_s) >= 0)
    assert r.request_id.tolist() == list(range(N))


@pytest.mark.parametrize("target_cv", [2.0, 0.5])
def test_gamma_cv(target_cv):
    r = generate(arrival="gamma", rate="8 req/s", cv=target_cv)
    rate, cv = rate_and_cv(r)
    assert rate == pytest.approx(8.0, rel=0.03)
    assert cv == pytest.approx(target_cv, rel=0.05)


def test_bursty_mean_rate_and_silences():
    r = generate(arrival="bursty", rate="10 req/s", on="5 s", off="15 s")
    rate, cv = rate_and_cv(r)
    assert rate == pytest.approx(10.0 * 5 / 20, rel=0.03)
    assert cv > 1.5  # gaps mix short in-burst gaps and the silences
    # nothing arrives during an off period: phase within each 20 s cycle is below 5 s
    assert np.all(np.mod(r.arrival_s, 20.0) <= 5.0 + 1e-9)


def test_lognormal_lengths_mean_and_cv():
    r = generate(
        input_tokens={"dist": "lognormal", "mean": 2000, "cv": 0.8},
        output_tokens={"dist": "lognormal", "mean": 300, "cv": 1.5},
    )
    for values, mean, cv in ((r.input_tokens, 2000, 0.8), (r.output_tokens, 300, 1.5)):
        assert values.mean() == pytest.approx(mean, rel=0.03)
        assert values.std() / values.mean() == pytest.approx(cv, rel=0.03)
        assert values.min() >= 1


def test_lognormal_params():
    mu, sigma = lognormal_params(100.0, 0.5)
    assert np.exp(mu + sigma**2 / 2) == pytest.approx(100.0)
    assert np.sqrt(np.exp(sigma**2) - 1) == pytest.approx(0.5)


def test_clipping_and_uniform_and_fixed():
    r = generate(
        input_tokens={"dist": "lognormal", "mean": 4096, "cv": 1.0, "min": 128, "max": 8192},
        output_tokens={"dist": "uniform", "min": 10, "max": 20},
    )
    assert r.input_tokens.min() == 128 and r.input_tokens.max() == 8192
    assert set(np.unique(r.output_tokens).tolist()) == set(range(10, 21))
    assert r.output_tokens.mean() == pytest.approx(15, rel=0.01)
    fixed = generate(requests=10, input_tokens=333, output_tokens={"dist": "fixed", "value": 7})
    assert fixed.input_tokens.tolist() == [333] * 10 and fixed.output_tokens.tolist() == [7] * 10


def test_length_spec_validation():
    with pytest.raises(ValidationError, match="needs mean"):
        LengthSpec(dist="lognormal", cv=1.0)
    with pytest.raises(ValidationError, match="larger than max"):
        LengthSpec(dist="uniform", min=10, max=5)


def test_empirical_lengths_resample_the_trace():
    trace = {"path": "azure_conv_2k.csv", "format": "azure"}
    r = generate(
        requests=20_000,
        input_tokens={"dist": "empirical", "trace": trace},
        output_tokens={"dist": "empirical", "trace": trace},
    )
    import csv

    with (DATA / "azure_conv_2k.csv").open(newline="") as fh:
        rows = [(int(x["ContextTokens"]), int(x["GeneratedTokens"])) for x in csv.DictReader(fh)]
    pairs = set(rows)
    got = set(zip(r.input_tokens.tolist(), r.output_tokens.tolist(), strict=True))
    assert got <= pairs  # the same trace for both: pairs resampled together
    assert r.input_tokens.mean() == pytest.approx(np.mean([p[0] for p in rows]), rel=0.03)
    # different traces (or one with options): independent draws, still from the trace's values
    capped = {**trace, "max_output_tokens": 50}
    r2 = generate(
        requests=5000,
        input_tokens={"dist": "empirical", "trace": trace, "max": 1500},
        output_tokens={"dist": "empirical", "trace": capped},
    )
    assert r2.input_tokens.max() <= 1500 and r2.output_tokens.max() <= 50
    assert set(r2.output_tokens.tolist()) <= {min(p[1], 50) for p in rows}


@pytest.mark.parametrize("target", [0.3, 0.6, 0.85])
def test_prefix_model_hits_the_target_share(target):
    r = generate(
        input_tokens={"dist": "lognormal", "mean": 3000, "cv": 0.8, "min": 16},
        prefix_hit_rate=target,
    )
    assert r.hash_ids is not None
    assert r.hash_counts().tolist() == (-(-r.input_tokens // 512)).tolist()
    assert hit_share(r) == pytest.approx(target, abs=0.02)


def test_prefix_model_with_other_blocks_and_groups():
    r = generate(
        requests=20_000,
        input_tokens={"dist": "uniform", "min": 200, "max": 6000},
        prefix_hit_rate=0.5,
        prefix_groups=3,
        block_tokens=64,
    )
    assert hit_share(r, block=64) == pytest.approx(0.5, abs=0.02)
    # ids of shared prefixes recur; each request's own blocks are never reused
    _, counts = np.unique(r.hash_ids, return_counts=True)
    assert counts.max() > 100


def test_no_prefix_sharing_means_no_hashes():
    r = generate(requests=100)
    assert r.hash_ids is None and r.hash_offsets is None


def test_same_seed_same_arrays_different_seed_different():
    fields = {
        "arrival": "gamma",
        "cv": 2.0,
        "requests": 20_000,
        "prefix_hit_rate": 0.4,
        "input_tokens": {"dist": "lognormal", "mean": 2000, "cv": 1.0},
        "output_tokens": {"dist": "uniform", "min": 1, "max": 500},
    }
    a = generate(seed=7, **fields)
    b = generate(seed=7, chunk_size=1234, **fields)  # the chunking does not matter either
    c = generate(seed=8, **fields)
    for name in (
        "request_id",
        "arrival_s",
        "input_tokens",
        "output_tokens",
        "hash_ids",
        "hash_offsets",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.arrival_s, c.arrival_s)
    assert not np.array_equal(a.input_tokens, c.input_tokens)
    assert not np.array_equal(a.output_tokens, c.output_tokens)


def test_chunks_are_bounded_and_consecutive():
    chunks = list(iter_requests(synthetic(requests=10_000), DATA, 0, 3000))
    assert [len(c) for c in chunks] == [3000, 3000, 3000, 1000]
    assert [int(c.request_id[0]) for c in chunks] == [0, 3000, 6000, 9000]
    assert all(chunks[i].arrival_s[-1] <= chunks[i + 1].arrival_s[0] for i in range(3))
