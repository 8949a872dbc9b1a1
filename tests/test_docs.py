from pathlib import Path

from primitives import OPS
from primitives.registry import markdown_table


def test_readme_op_table_is_the_registry():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert markdown_table(OPS) in readme
