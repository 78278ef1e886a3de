"""The local and Ray backends give identical plan.json on the same seed.

The planner decides which candidates to simulate from whole rounds of results, in candidate
order, never from the order in which results arrive, so a process pool and a Ray cluster must
produce the same plan byte for byte. Needs the ``ray`` extra; a local Ray of two CPUs is
started for the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hetsim

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

PLAN_SMALL = Path(__file__).parent / "data" / "plan-small.yaml"
# 150 requests a simulation keep the plan to a few seconds (11 simulations), and at this size
# disaggregated and colocated deployments are both searched through the backend
OVERRIDES = ["workload.synthetic.requests=150"]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of two CPUs; left alone if a Ray is already running in this process."""
    owned = not ray.is_initialized()
    if owned:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if owned:
        ray.shutdown()


def _plan(backend: str):
    progress: list[dict[str, int]] = []
    result = hetsim.plan(
        PLAN_SMALL, OVERRIDES, backend=backend, workers=2, progress=progress.append
    )
    return result, progress


def test_local_and_ray_give_the_same_plan(local_ray):
    local, local_progress = _plan("local")
    remote, remote_progress = _plan("ray")

    assert (local.backend, local.workers) == ("local", 2)
    assert (remote.backend, remote.workers) == ("ray", 2)
    # the backend did not shut down the Ray it joined
    assert local_ray.is_initialized()

    # the plan is worth comparing: a best, a baseline, several simulated candidates
    assert local.best is not None
    searched = {r.candidate.kind for r in local.results if r.goodput > 0}
    assert searched == {"disaggregated", "colocated"}
    assert local.simulations > 0

    assert json.dumps(remote.to_dict(), sort_keys=True) == json.dumps(
        local.to_dict(), sort_keys=True
    )
    assert remote.simulations == local.simulations
    # results arrive in a different order, but every count ends the same
    assert remote_progress[-1] == local_progress[-1]
