"""Fixtures of the HA scenarios: a Sentinel topology, and a Redis Cluster of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Node, SentinelTopology, start_cluster, start_sentinel_topology


@pytest.fixture
def sentinel_topology(tmp_path) -> Iterator[SentinelTopology]:
    with start_sentinel_topology(tmp_path) as topology:
        yield topology


@pytest.fixture
def redis_cluster(tmp_path) -> Iterator[list[Node]]:
    with start_cluster(tmp_path) as nodes:
        yield nodes
