"""The documentation says what the code does: the op table is the registry's, the README stays short."""
from pathlib import Path

from lpzero.primitives import OPS
from lpzero.primitives.registry import markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_concepts_op_table_is_the_registry():
    assert markdown_table(OPS) in (ROOT / "docs" / "concepts.md").read_text()


def test_readme_is_for_users_and_short():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for history in ("previous release", "earlier measurement", "last session"):
        assert history not in readme
