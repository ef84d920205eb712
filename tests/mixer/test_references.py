"""Create-time reference checks: the control's API refuses a Mixer rule whose handler or instance
does not resolve against the store, with the field path; nothing stored changes."""

import pytest

import trimesh.mixer  # noqa: F401
from trimesh.control import ConfigStore
from trimesh.control._api import dispatch  # the API's request handler (as tests/control do)
from trimesh.service import HTTPError

from test_runtime import DENY_LABEL

HANDLER, INSTANCE, RULE = DENY_LABEL.split("---\n")


async def post(store, text):
    return await dispatch(store, "POST", "/v1/objects", text.encode())


@pytest.mark.parametrize("first, path, what", [
    ([INSTANCE], "$.spec.actions[0].handler", "no handler denyreviewsv3handler.denier.default"),
    ([HANDLER], "$.spec.actions[0].instances[0]",
     "no instance denyreviewsv3request.checknothing.default"),
])
async def test_a_rule_with_an_unresolvable_reference_is_refused(tmp_path, first, path, what):
    store = ConfigStore.open(tmp_path)
    for text in first:
        assert (await post(store, text))[0] == 201
    before = store.revision
    with pytest.raises(HTTPError) as info:
        await post(store, RULE)
    assert info.value.status == 400
    assert path in str(info.value) and what in str(info.value)
    assert store.revision == before and store.list(kind="rule") == []


async def test_the_docs_order_is_accepted(tmp_path):
    store = ConfigStore.open(tmp_path)
    assert [(await post(store, t))[0] for t in (HANDLER, INSTANCE, RULE)] == [201, 201, 201]
