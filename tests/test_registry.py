"""The one registry of named plugins (lpzero.registry) and the kinds built on it."""
from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import lpzero.registry
from lpzero.errors import LPZeroError, UnknownNameError
from lpzero.registry import Registry, load_object, object_path, subclass_check


class Base:
    pass


class Child(Base):
    pass


def test_a_name_registered_twice_is_refused():
    reg = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="'a' is registered twice"):
        reg.register("a", 2)


def test_the_decorator_registers_and_returns_the_function():
    reg = Registry("thing")

    @reg.register("f")
    def f():
        return 3

    assert reg.get("f") is f and f() == 3


def test_text_entries_load_on_first_use_and_prefixes_carry_their_argument():
    reg = Registry("thing")
    reg.register("path", "pathlib:Path", prefix=True)
    assert isinstance(reg._entries["path"], str)  # not imported until asked for
    found = reg.lookup("path:/tmp/x")
    assert found.obj.__name__ == "Path" and found.argument == "/tmp/x"
    assert reg.get("path").__name__ == "Path"


def test_an_unknown_name_lists_the_known_ones():
    reg = Registry("thing")
    reg.register("alpha", 1)
    with pytest.raises(UnknownNameError, match=r"unknown thing 'beta' \(known: alpha, module:NAME, file.py:NAME\)"):
        reg.get("beta")


def test_module_and_file_paths_load_and_are_checked(tmp_path):
    reg = Registry("thing", check=subclass_check(Base))
    assert reg.get(f"{__name__}:Child") is Child
    with pytest.raises(LPZeroError, match="is not a subclass of"):
        reg.get(f"{__name__}:Registry")
    plugin = tmp_path / "plugin.py"
    plugin.write_text(f"from {__name__} import Base\nclass Mine(Base):\n    pass\n")
    assert reg.get(f"{plugin}:Mine").__name__ == "Mine"
    with pytest.raises(LPZeroError, match="file not found"):
        reg.get(f"{tmp_path / 'missing.py'}:Mine")


def test_entry_points_of_the_group_are_found(monkeypatch):
    ep = EntryPoint("child", f"{__name__}:Child", "lpzero.things")
    monkeypatch.setattr(lpzero.registry, "entry_points", lambda group: [ep] if group == ep.group else [])
    reg = Registry("thing", group="lpzero.things")
    assert "child" in reg and reg.get("child") is Child
    assert "child" in reg.names()


def test_load_object_names_what_is_wrong():
    with pytest.raises(LPZeroError, match="no attribute 'nothing'"):
        load_object("pathlib:nothing", "thing")
    with pytest.raises(LPZeroError, match="not of the form"):
        load_object("pathlib", "thing")


def test_object_path_round_trips_importable_objects_only():
    assert object_path(Child) == f"{__name__}:Child"
    assert load_object(object_path(Child)) is Child
    assert object_path(lambda: 0) is None


def test_every_plugin_kind_is_a_registry():
    from lpzero.benchmarks import BENCHMARKS
    from lpzero.executors import EXECUTOR_KINDS
    from lpzero.benchmarks import SPACES as OPEN_SPACES

    assert {"gpt2", "flexibert", "lonas-mini"} <= set(BENCHMARKS)
    assert list(EXECUTOR_KINDS) == ["local", "process", "ray"]
    assert {"lts", "gpt2", "lonas"} <= set(OPEN_SPACES)
