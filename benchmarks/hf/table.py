"""A user's table of transformers architectures and their measured quality: the file `hf:FILE` reads.

```yaml
model_type: opt              # or  base: path/to/config.json  (every architecture starts from it)
tokenizer: tok/              # a local tokenizer directory (AutoTokenizer, local files only)
higher_is_better: false      # the metric's orientation (perplexity: false)
metric: valid_ppl            # optional: the metric's name in reports (default "metric")
text: my_text.txt            # optional: the text of the mini-batches (default: WikiText-2 valid)
architectures:               # a list as below, or the path of a CSV file: columns id, metric and config keys
  - id: small
    config: {num_hidden_layers: 2, hidden_size: 64, ffn_dim: 128, num_attention_heads: 2}
    metric: 41.3
```

Paths are relative to the file. `read_table` checks everything a typo can break, naming the file and
the key: unknown keys (in the file, an architecture, or a config: a key the family's config class does
not have), missing ones, ids that repeat or could not be file names, metrics that are not finite
numbers, a model_type transformers does not know, a base config that is not JSON.
"""
from __future__ import annotations

import csv
import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..base import BenchmarkError, read_json_object, read_yaml

#: the keys of the file, of one architecture
TABLE_KEYS = ("model_type", "base", "tokenizer", "higher_is_better", "metric", "text", "architectures")
ARCHITECTURE_KEYS = ("id", "config", "metric")
#: what an architecture id may contain: it names the architecture's cache file
ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TableArchitecture:
    """One row: its id, its config keys (over the base config or the family's defaults), its measured metric."""

    id: str
    config: dict
    metric: float


@dataclass(frozen=True)
class Table:
    """A parsed `hf:FILE` (see the module docstring); paths absolute."""

    path: Path
    model_type: str
    #: the base config every architecture starts from (its keys), empty without `base`
    base: dict
    base_path: Path | None
    tokenizer: Path
    higher_is_better: bool
    metric: str
    text: Path | None
    architectures: tuple[TableArchitecture, ...]

    def full_config(self, arch: TableArchitecture) -> dict:
        """The architecture's config keys over the base's (its `model_type` left out)."""
        return {**{k: v for k, v in self.base.items() if k != "model_type"}, **arch.config}


def read_table(path: Path) -> Table:
    """The table in `path` (YAML), checked (see the module docstring); BenchmarkError naming file and key."""
    path = Path(path).resolve()
    data = read_yaml(path)
    where = str(path)
    if not isinstance(data, dict):
        raise BenchmarkError(f"{where}: expected a mapping with {', '.join(TABLE_KEYS)}")
    _no_unknown(data, TABLE_KEYS, where)
    if ("model_type" in data) == ("base" in data):
        raise BenchmarkError(f"{where}: give exactly one of model_type (a transformers model_type, e.g. opt) and "
                             "base (a config.json every architecture starts from)")
    folder = path.parent
    base, base_path = {}, None
    if "base" in data:
        base_path = _path(data, "base", folder, where)
        base = read_json_object(base_path)
        model_type = base.get("model_type")
        if not isinstance(model_type, str):
            raise BenchmarkError(f"{base_path}: no model_type (a config.json saved by transformers has one)")
    else:
        model_type = data["model_type"]
        if not isinstance(model_type, str) or not model_type:
            raise BenchmarkError(f"{where}: model_type must be a transformers model_type, e.g. opt, not {model_type!r}")
    if "tokenizer" not in data:
        raise BenchmarkError(f"{where}: no tokenizer (a local tokenizer directory, e.g. tokenizer: tok/)")
    orientation = data.get("higher_is_better")
    if not isinstance(orientation, bool):
        raise BenchmarkError(f"{where}: higher_is_better must be true or false (is a higher metric better? "
                             f"perplexity: false), not {orientation!r}")
    metric = data.get("metric", "metric")
    if not isinstance(metric, str) or not metric:
        raise BenchmarkError(f"{where}: metric must name the metric, e.g. valid_ppl, not {metric!r}")
    text = _path(data, "text", folder, where) if "text" in data else None
    rows = _rows(data.get("architectures"), folder, where)
    return Table(path, model_type, base, base_path, _path(data, "tokenizer", folder, where), data["higher_is_better"],
                 metric, text, tuple(_architecture(row, i, where) for i, row in enumerate(rows)))


def _no_unknown(mapping: dict, known: tuple[str, ...], where: str) -> None:
    unknown = [k for k in mapping if k not in known]
    if unknown:
        raise BenchmarkError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(known)})")


def _path(data: dict, key: str, folder: Path, where: str) -> Path:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise BenchmarkError(f"{where}: {key} must be a path, not {value!r}")
    found = (folder / value).resolve()
    if not found.exists():
        raise BenchmarkError(f"{where}: {key} {value!r}: {found} not found")
    return found


def _rows(value: Any, folder: Path, where: str) -> list:
    """The architectures: the list itself, or the rows of the CSV file it names."""
    if isinstance(value, str):
        return csv_rows(_path({"architectures": value}, "architectures", folder, where))
    if not isinstance(value, list) or not value:
        raise BenchmarkError(f"{where}: architectures must be a non-empty list (id, config, metric) or a CSV file's "
                             f"path, not {value!r:.60}")
    return value


def csv_rows(path: Path) -> list[dict]:
    """A CSV table's rows as architectures: columns `id` and `metric`, every other column a config key (each cell
    read as YAML, so 2 is an int, 0.1 a float, true a bool)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BenchmarkError(f"{path}: cannot read it as CSV: {e}") from None
    if not rows or not {"id", "metric"} <= set(rows[0]):
        raise BenchmarkError(f"{path}: expected a header with id, metric and config keys, and one row per architecture")
    return [{"id": r["id"], "metric": _cell(r["metric"], path, "metric"),
             "config": {k: _cell(v, path, k) for k, v in r.items() if k not in ("id", "metric")}} for r in rows]


def _cell(text: str | None, path: Path, column: str) -> Any:
    try:
        return yaml.safe_load(text) if text not in (None, "") else None
    except yaml.YAMLError:
        raise BenchmarkError(f"{path}: column {column}: cannot read {text!r}") from None


def _architecture(row: Any, index: int, where: str) -> TableArchitecture:
    at = f"{where}: architectures[{index}]"
    if not isinstance(row, dict):
        raise BenchmarkError(f"{at}: expected a mapping with {', '.join(ARCHITECTURE_KEYS)}")
    _no_unknown(row, ARCHITECTURE_KEYS, at)
    arch_id = row.get("id")
    if not isinstance(arch_id, str) or not ID_PATTERN.fullmatch(arch_id):
        raise BenchmarkError(f"{at}: id must be a name of letters, digits, '_', '.', '-', not {arch_id!r}")
    config = row.get("config", {})
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise BenchmarkError(f"{at} ({arch_id}): config must be a mapping of config keys, not {config!r:.60}")
    metric = row.get("metric")
    if isinstance(metric, bool) or not isinstance(metric, (int, float)) or not math.isfinite(metric):
        raise BenchmarkError(f"{at} ({arch_id}): metric must be a finite number, not {metric!r}")
    return TableArchitecture(arch_id, dict(config), float(metric))


@functools.lru_cache(maxsize=32)
def config_keys(model_type: str) -> frozenset[str]:
    """The keys the config class of `model_type` knows (its defaults' and its attribute aliases); BenchmarkError
    for a model_type transformers does not know."""
    from transformers import AutoConfig

    try:
        default = AutoConfig.for_model(model_type)
    except ValueError:
        raise BenchmarkError(f"model_type {model_type!r} is not one transformers knows (e.g. gpt2, gpt_neox, opt, "
                             "llama, mistral, qwen2, bert)") from None
    return frozenset(default.to_dict()) | frozenset(getattr(default, "attribute_map", {}))


def check_config_keys(table: Table) -> None:
    """BenchmarkError naming the first config key (of an architecture, or of the base) that the family's config
    class does not know: transformers would keep a typo as an attribute and build another model."""
    known = config_keys(table.model_type)
    for arch in table.architectures:
        unknown = [k for k in arch.config if k not in known]
        if unknown:
            raise BenchmarkError(f"{table.path}: architecture {arch.id}: config key {unknown[0]!r} is not a key of "
                                 f"{table.model_type}'s config")


def config_json(config: dict) -> str:
    """A config as canonical JSON (what a cache's fingerprint hashes)."""
    return json.dumps(config, sort_keys=True, default=str)


__all__ = ["ARCHITECTURE_KEYS", "TABLE_KEYS", "Table", "TableArchitecture", "check_config_keys", "config_keys",
           "csv_rows", "read_table"]
