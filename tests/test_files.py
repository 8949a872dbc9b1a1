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


def test_a_full_disk_names_the_file_not_the_temporary(tmp_path):
    import errno

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "best.json", full)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "best.json")


def test_a_safetensors_failure_is_an_os_error_naming_the_file(tmp_path):
    from safetensors import SafetensorError

    def fail(tmp):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    with pytest.raises(OSError, match=r"entry\.safetensors: cannot be written: Error while serializing"):
        atomic_write(tmp_path / "entry.safetensors", fail)
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_umask_mode_whatever_the_writer_used(tmp_path):
    import os
    import stat

    import torch
    from safetensors.torch import save_file

    atomic_write(tmp_path / "w.safetensors", lambda tmp: save_file({"w": torch.zeros(2)}, str(tmp)))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == 0o666 & ~umask
