"""Which extraction runs ask Ray for GPUs (what makes an autoscaling cluster start GPU nodes)."""

from __future__ import annotations

import pytest

from dgnode.embedding.config import ExtractConfig
from dgnode.embedding.stages import ray_uses_gpu


@pytest.mark.parametrize(("device", "expected"), [("cuda", True), ("cpu", False), ("auto", False)])
def test_cuda_requests_gpus_even_before_any_gpu_node_exists(ray_local, device, expected):
    assert ray_local.cluster_resources().get("GPU", 0) == 0  # this machine, and CI, have none
    assert ray_uses_gpu(ExtractConfig(manifest="m", store="s", device=device)) is expected


def test_min_actors_lies_between_one_and_num_actors():
    assert ExtractConfig(manifest="m", store="s", num_actors=2, min_actors=2).min_actors == 2
    for num_actors, min_actors in ((2, 3), (None, 0), (1, 0)):
        with pytest.raises(ValueError, match=rf"min_actors must be between 1 and num_actors \({num_actors}\), got {min_actors}"):
            ExtractConfig(manifest="m", store="s", num_actors=num_actors, min_actors=min_actors)
