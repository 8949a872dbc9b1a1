"""lpzero.files: an interrupted write leaves the previous file, never a torn one."""
import pytest

from lpzero.files import atomic_write, atomic_write_json, atomic_write_text


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "complete")

    def half_then_fail(tmp):
        tmp.write_text("half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_json_is_written_whole(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": [1, 2]})
    assert (tmp_path / "x.json").read_text() == '{\n "a": [\n  1,\n  2\n ]\n}'
