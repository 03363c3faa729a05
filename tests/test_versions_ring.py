"""The ring covered exactly on a 3-node Cassandra 4.1 cluster (48 vnodes), part of the matrix.

test_export_ring's edge-key test, unchanged, on three 4.1.10 nodes: blob keys built at the
ring's ends, at every node token and the token after it, and at every planned unit boundary,
each exported exactly once, in the file of the unit that owns its token, with the units
planned from 4.1's ring and size estimates. The single-node matrix (test_versions.py) stops
its last node before this module starts its three.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from dev.cassandra_local import (
    PINNED_VERSIONS,
    ClusterHandle,
    LocalCluster,
    checkout_prefix,
)
from tests import helpers
from tests.conftest import MULTI_MIN_AVAILABLE, TEST_ROOT, VersionNodes, _local_cluster
from tests.test_export_ring import (  # noqa: F401 - fixtures and the test, run on 4.1
    edge_keys,
    node_tokens,
    test_blob_keys_at_ring_edges_exactly_once,
)
from tests.test_versions import exports, ks  # noqa: F401 - the matrix's fixtures

pytestmark = [pytest.mark.versions, pytest.mark.multinode]

# A slot of its own, beside the single nodes' 10, 11, 12 (conftest.VERSION_SLOTS).
RING_SLOT = 13
RING_VERSION = PINNED_VERSIONS["4.1"]
RING_START_TIMEOUT = 600


@pytest.fixture(scope="module", params=[RING_VERSION], ids=[f"cassandra-{RING_VERSION}-3-nodes"])
def db(cassandra_version: VersionNodes) -> Iterator[ClusterHandle]:
    """Three 4.1.10 nodes (this checkout's 127.n.13.1-3, 512 MB heaps; overrides ``db``).

    A parameter of one value, so that the summary counts these tests under 4.1.10."""
    cassandra_version.close()  # no single matrix node beside these three
    available = psutil.virtual_memory().available
    if available < MULTI_MIN_AVAILABLE:
        helpers.cannot_run(f"only {available / 2**30:.1f} GB of memory available for 3 nodes")
    cluster = LocalCluster(
        TEST_ROOT / f"ring{RING_VERSION}",
        nodes=3,
        address_prefix=checkout_prefix(RING_SLOT),
        num_tokens=16,
        heap="512M",
        version=RING_VERSION,
    )
    # Three first starts in a row: on a loaded 2-core box one took over 180 s (a 55 s JVM pause).
    lock = TEST_ROOT / f"ring{RING_VERSION}.lock"
    with _local_cluster(lock, cluster, timeout=RING_START_TIMEOUT) as handle:
        yield handle


def test_three_nodes_of_4_1_own_the_ring(session: Any) -> None:
    peers = [str(r[0]) for r in session.execute("SELECT release_version FROM system.peers")]
    local = str(session.execute("SELECT release_version FROM system.local").one()[0])
    assert [local, *peers] == [RING_VERSION] * 3
    owners = Counter(
        h.address for h in session.cluster.metadata.token_map.token_to_host_owner.values()
    )
    assert sorted(owners.values()) == [16, 16, 16]
