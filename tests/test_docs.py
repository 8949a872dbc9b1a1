"""The documentation says what the code does: the op table is the registry's, the README stays short."""
from pathlib import Path

from lpzero.primitives import OPS
from lpzero.primitives.op import markdown_table

ROOT = Path(__file__).resolve().parent.parent


def test_concepts_op_table_is_the_registry():
    assert markdown_table(OPS) in (ROOT / "docs" / "concepts.md").read_text()


def test_readme_is_for_users_and_short():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for history in ("previous release", "earlier measurement", "last session"):
        assert history not in readme


def _python_blocks():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for i, block in enumerate(text.split("```python")[1:]):
            yield f"{doc.name}[{i}]", block.split("```")[0]


def test_every_python_example_in_the_docs_compiles_and_its_imports_exist():
    import ast

    blocks = list(_python_blocks())
    assert blocks, "the docs show Python examples"
    for where, code in blocks:
        tree = ast.parse(code, where)  # a syntax error names the block
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(body=imports, type_ignores=[]), where, "exec"), {})  # a renamed API fails here


def test_examples_that_start_worker_processes_guard_their_entry_point():
    # a spawned worker imports the script again: without the guard it starts workers itself
    for where, code in _python_blocks():
        if "jobs=" in code or "ExecutorSettings(" in code:
            assert 'if __name__ == "__main__":' in code, where
