"""Every JSON file lpzero writes is strict JSON: a non-finite number is null with its reason beside it,
read back as that number; files of an older lpzero (NaN/-Infinity tokens) still read."""
import json
import math

from click.testing import CliRunner

from conftest import FAKE_BENCHMARK
from lpzero.checkpoint import CheckpointFormat, read_checkpoint, write_checkpoint
from lpzero.cli import main
from lpzero.files import from_strict_json, json_text

WHOLE = ["--samples", "12288"]
SEARCH = ["--population", "8", "--sample", "3", "--runs", "2", "--baselines", "num_params"]
FORMAT = CheckpointFormat("lpzero test", 1, ("population",))


def strict(text: str):
    """`text` parsed by a strict JSON parser: a NaN or Infinity token is an error."""
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def strict_files(folder):
    """Every .json file under `folder`, parsed strictly, by path."""
    return {p: strict(p.read_text()) for p in sorted(folder.rglob("*.json"))}


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_a_non_finite_number_is_null_with_the_reason_beside_it():
    data = {"fitness": -math.inf, "scores": [1.0, math.nan, [2.0, math.inf]], "n": 3}
    written = strict(json_text(data))
    assert written["fitness"] is None and written["fitness_why"] == "not finite: -inf"
    assert written["scores"] == [1.0, None, [2.0, None]]
    assert written["scores_why"] == "not finite: [1]: nan; [2][1]: inf"
    back = from_strict_json(written)
    assert back["fitness"] == -math.inf and back["n"] == 3 and set(back) == set(data)
    assert math.isnan(back["scores"][1]) and back["scores"][2] == [2.0, math.inf]


def test_a_checkpoint_is_strict_and_reads_back_its_non_finite_numbers(tmp_path):
    path = tmp_path / "checkpoint.json"
    write_checkpoint(path, FORMAT, {"population": [{"tree": "t", "fitness": -math.inf}]})
    assert strict(path.read_text())["population"][0]["fitness"] is None
    assert read_checkpoint(path, FORMAT)["population"] == [{"tree": "t", "fitness": -math.inf}]
    # a file of an older lpzero, with an Infinity token, reads the same
    path.write_text('{"version": 1, "population": [{"tree": "t", "fitness": -Infinity}]}')
    assert read_checkpoint(path, FORMAT)["population"] == [{"tree": "t", "fitness": -math.inf}]


def test_an_evolve_run_with_invalid_proxies_writes_strict_json_and_resumes_to_the_same_result(tmp_path):
    cache = tmp_path / "cache"
    common = ["evolve", "--benchmark", FAKE_BENCHMARK, "--cache-dir", cache, *WHOLE, *SEARCH]
    invoke(*common, "--iterations", "12", "--out", tmp_path / "whole")
    invoke(*common, "--iterations", "6", "--out", tmp_path / "cut")
    checkpoint = strict((tmp_path / "cut" / "run_0" / "checkpoint.json").read_text())
    assert any(p["fitness"] is None and p["fitness_why"] == "not finite: -inf" for p in checkpoint["population"])
    invoke(*common, "--iterations", "12", "--out", tmp_path / "cut", "--resume")
    whole, resumed = strict_files(tmp_path / "whole"), strict_files(tmp_path / "cut")
    best = [(tmp_path / run / "best.json") for run in ("whole", "cut")]
    assert whole[best[0]]["tree"] == resumed[best[1]]["tree"]
    assert [e["tree"] for e in whole[best[0].with_name("hall_of_fame.json")]] == \
        [e["tree"] for e in resumed[best[1].with_name("hall_of_fame.json")]]
