"""Markers: `data` tests read ../shared/data (skipped with the reason when it is absent), `slow` ones take seconds.

`python -m pytest tests -m "not slow"` is the quick subset; `-m "not data"` runs without the data.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lpzero.benchmarks import default_data_root
from lpzero.cli import main

#: the fake benchmark as a user's own class, by file path (see tests/fake_benchmark.py)
FAKE_BENCHMARK = f"{Path(__file__).resolve().parent / 'fake_benchmark.py'}:TinyGPT2Benchmark"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "data: reads the benchmark data under ../shared/data (or $LPZERO_DATA)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "gpu: needs CUDA (skipped without it); run them where a GPU is lent")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = default_data_root()
    if root.is_dir():
        return
    skip = pytest.mark.skip(reason=f"benchmark data not found at {root} (set LPZERO_DATA)")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lonas_smoke(tmp_path_factory):
    """`lpzero build lonas-mini --smoke` once per session: (its directory, the CliRunner result)."""
    out = tmp_path_factory.mktemp("lonas_mini") / "lonas_mini"
    return out, CliRunner().invoke(main, ["build", "lonas-mini", "--smoke", "--out", str(out)])


@pytest.fixture
def found(tmp_path):
    """A found proxy's best.json: a forward-only tree (H), as the GPT-2 proxy is."""
    path = tmp_path / "found" / "best.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"tree": "frobenius__Lh(l1__Th(abslog__Th(square__Th(H))))",
                                "primitive_set_version": "1", "orientation": 1, "benchmark": FAKE_BENCHMARK}))
    return path
