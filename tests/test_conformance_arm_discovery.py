# ruff: noqa: F811 - the credential fixtures come from tests/test_arm.py
"""Resource Manager's tenants, providers, subscription and tags answers against the spec
examples in tests/conformance/arm_discovery/ (facts only: status, field names, types)."""

from __future__ import annotations

import pytest

from sandbox import world
from tests.conformance.compare import assert_conforms, load
from tests.test_arm import MGMT_SCOPE, dev_credential, raw  # noqa: F401 - fixtures

FIXTURES = load("arm_discovery")


@pytest.mark.parametrize("name,fixture", FIXTURES, ids=[n for n, _ in FIXTURES])
def test_arm_discovery_conforms(sandbox, fresh, dev_credential, name, fixture):
    request = fixture["request"]
    values = {"subscription": world.SUBSCRIPTION_ID}
    path = request["path"].replace("{subscription}", world.SUBSCRIPTION_ID)
    path += f"?api-version={request['api_version']}"
    token = dev_credential.get_token(MGMT_SCOPE).token
    status, _, body = raw(sandbox, request["method"], path, token, request.get("body"))
    assert_conforms(name, fixture, status, body, values)
