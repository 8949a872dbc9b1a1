"""`lpzero nas` on LoNAS sub-networks: the smoke build's super-network, picks exported as peft adapters."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from peft import PeftModel

from lpzero.benchmarks import get_benchmark
from lpzero.benchmarks.lonas import SUBNETWORK_FILE, load_base, mask_ffn, run_subnetwork
from lpzero.cli import main
from lpzero.nas import get_space
from lpzero.benchmarks.lonas.search_space import LoNASSearchSpace

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_genome_config_round_trip(lonas_smoke):
    out, _ = lonas_smoke
    space = get_space(f"lonas:{out}")
    assert isinstance(space, LoNASSearchSpace)
    heuristic = space.bench.space.pick("heuristic")
    genome = space.encode(heuristic)
    assert space.decode(genome) == heuristic
    assert space.ground_truth(heuristic) == space.bench.architecture("heuristic").ground_truth
    assert space.ground_truth({**heuristic, "L0.ffn_width": space.bench.space.groups[1].choices[-1]}) is None


def test_nas_picks_a_subnetwork_within_budget_that_peft_loads(lonas_smoke, tmp_path):
    out, _ = lonas_smoke
    bench = get_benchmark(f"lonas:{out}")
    budget = bench.count_params("heuristic")["total"]
    result = CliRunner().invoke(main, ["nas", "--space", f"lonas:{out}", "--proxy", "lpzero_llama", "--max-params",
                                       str(budget), "--population", "4", "--generations", "1", "--seq-len", "32",
                                       "--out", str(tmp_path / "nas"), "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "nas" / "summary.json").read_text())
    chosen = summary["chosen"]
    assert chosen["params"] <= budget
    folder = tmp_path / "nas" / "chosen" / "subnetwork_0"
    assert json.loads((folder / SUBNETWORK_FILE).read_text())["choice"] == chosen["config"]
    base = mask_ffn(load_base(out / "base"), bench.space, chosen["config"])
    loaded = PeftModel.from_pretrained(base, str(folder)).eval()
    ids = bench.make_batch(0, 2, 16).input_ids
    with torch.no_grad():
        expected = run_subnetwork(bench.supernetwork(), bench.space, chosen["config"], input_ids=ids).logits
        assert torch.allclose(loaded(input_ids=ids).logits, expected, atol=1e-5)
