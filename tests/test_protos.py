"""The committed pipeline*_pb2.py modules are exactly what protoc generates from the committed .proto files."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROTO_DIR = REPO / "tfodkit" / "protos"


def _pipeline_protos() -> list[Path]:
    return sorted(PROTO_DIR.glob("pipeline*.proto"))


def test_generated_modules_match_protos(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the [test] extra) regenerates the _pb2 modules")
    protos = _pipeline_protos()
    assert protos, "no tfodkit/protos/pipeline*.proto found"
    relative = [str(p.relative_to(REPO)) for p in protos]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={tmp_path}", *relative],
        cwd=REPO,
        check=True,
    )
    stale = []
    for proto in protos:
        fresh = tmp_path / "tfodkit" / "protos" / f"{proto.stem}_pb2.py"
        committed = PROTO_DIR / fresh.name
        if not committed.exists() or not filecmp.cmp(fresh, committed, shallow=False):
            stale.append(committed.name)
    assert not stale, f"regenerate with `make protos`: {stale} differ from protoc's output"

