"""The committed generated code and descriptor set match protos/ (regenerated into a tmp dir)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
_VERSION_MARKERS = ("# Protobuf Python Version:", "GRPC_GENERATED_VERSION =")


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("kt_protos_generate", ROOT / "protos/generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kt_protos_generate", module)
    spec.loader.exec_module(module)
    return module


def _normalized(path: Path) -> list[str]:
    """Generated Python without the generator-version lines (a newer grpcio-tools is not stale)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, skip = [], 0
    for line in lines:
        if skip:
            skip -= 1
            continue
        if line.startswith(_VERSION_MARKERS):
            continue
        if line.startswith("_runtime_version.ValidateProtobufRuntimeVersion("):
            skip = 6  # the version tuple lines of that call
            continue
        out.append(line)
    return out


def _wallet_file(descriptor: bytes) -> descriptor_pb2.FileDescriptorProto:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor)
    (wallet,) = [f for f in fds.file if f.name == "keeptrusts/wallet/v1/wallet.proto"]
    return wallet


def test_generated_code_is_current(tmp_path: Path) -> None:
    gen = _generator()
    written = gen.generate(tmp_path)
    assert written
    for fresh in written:
        rel = fresh.relative_to(tmp_path)
        committed = ROOT / rel
        assert committed.exists(), f"{rel} is not committed: run `make protos`"
        if rel.suffix == ".pb":
            assert _wallet_file(committed.read_bytes()) == _wallet_file(fresh.read_bytes()), (
                f"{rel} is stale: run `make protos`"
            )
            names = {
                f.name
                for f in descriptor_pb2.FileDescriptorSet.FromString(committed.read_bytes()).file
            }
            assert {
                "google/api/annotations.proto",
                "google/api/http.proto",
                "google/protobuf/struct.proto",
                "google/rpc/error_details.proto",
            } <= names
        else:
            assert _normalized(committed) == _normalized(fresh), (
                f"{rel} is stale: run `make protos`"
            )
    committed_files = {
        p.relative_to(ROOT)
        for p in (ROOT / "keeptrusts_authz/api/gen").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert committed_files <= {p.relative_to(tmp_path) for p in written}, "stray generated files"


def test_generated_modules_import() -> None:
    from keeptrusts_authz.api.gen.keeptrusts.wallet.v1 import wallet_pb2, wallet_pb2_grpc

    service = wallet_pb2.DESCRIPTOR.services_by_name["WalletService"]
    assert service.full_name == "keeptrusts.wallet.v1.WalletService"
    assert hasattr(wallet_pb2_grpc, "WalletServiceServicer")
