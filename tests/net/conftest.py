"""Network-namespace fixtures: one lab world per test module (namespaces, NAT routers, a
real coturn, Haven servers started as users start them), removed afterwards even when a
test fails. Skipped, with the reason, where namespaces cannot be made (not root, no ip/nft).
"""

from __future__ import annotations

import pytest

from tests.net.lab import Lab, build_world, unavailable

pytestmark = pytest.mark.net


@pytest.fixture(scope="module")
def lab():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with Lab() as made:
        yield made


@pytest.fixture(scope="module")
def world(lab):
    return build_world(lab)
