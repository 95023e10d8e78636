"""The access-log servicer reads Envoy's dynamic metadata Structs field by field; the values must
be what the generic protobuf JSON conversion would give (reconcile reads them)."""

from __future__ import annotations

from envoy.data.accesslog.v3 import accesslog_pb2
from google.protobuf import json_format

from keeptrusts_authz.envoy_contract import AUTHZ_NAMESPACE, USAGE_NAMESPACE
from keeptrusts_authz.gateway.accesslog_servicer import _namespace


def _entry() -> accesslog_pb2.HTTPAccessLogEntry:
    entry = accesslog_pb2.HTTPAccessLogEntry()
    metadata = entry.common_properties.metadata.filter_metadata
    metadata[AUTHZ_NAMESPACE].update(
        {"reservation_id": "r-1", "estimate_micros": 123456789012, "model": "gpt-4o"}
    )
    metadata[USAGE_NAMESPACE].update(
        {
            "found": True,
            "complete": False,
            "input_tokens": 12,
            "ratio": 0.5,
            "nested": {"a": [1, "b", None]},
            "nothing": None,
        }
    )
    return entry


def test_namespace_matches_the_generic_conversion() -> None:
    entry = _entry()
    for name in (AUTHZ_NAMESPACE, USAGE_NAMESPACE):
        expected = json_format.MessageToDict(entry.common_properties.metadata.filter_metadata[name])
        got = _namespace(entry, name)
        assert got == expected
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}


def test_numbers_keep_their_value_and_missing_namespace_is_empty() -> None:
    entry = _entry()
    authz = _namespace(entry, AUTHZ_NAMESPACE)
    assert authz["estimate_micros"] == 123456789012
    assert _namespace(accesslog_pb2.HTTPAccessLogEntry(), AUTHZ_NAMESPACE) == {}
