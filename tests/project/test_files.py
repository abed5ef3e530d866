"""Output files: owner-only, complete or absent, one readable error."""

from __future__ import annotations

import os

import pytest

from kiig_desktop.errors import InputError, StoreError
from kiig_desktop.files import private_output, write_private_text


@pytest.fixture
def permissive_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_written_owner_only_and_replaced_atomically(tmp_path, permissive_umask):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    with private_output(path) as fh:
        fh.write("new line 1\n")
        assert path.read_text() == "old\n"  # the old file stays until the new one is complete
        fh.write("new line 2\n")
    assert path.read_text() == "new line 1\nnew line 2\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_part(tmp_path):
    path = tmp_path / "report.html"
    write_private_text(path, "complete report")
    with pytest.raises(KeyboardInterrupt), private_output(path) as fh:
        fh.write("half a rep")
        raise KeyboardInterrupt
    assert path.read_text() == "complete report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_stale_part_file_does_not_keep_a_permissive_mode(tmp_path, permissive_umask):
    part = tmp_path / "o.csv.part"
    part.write_text("stale")
    os.chmod(part, 0o666)
    write_private_text(tmp_path / "o.csv", "a,b\n")
    assert (tmp_path / "o.csv").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("where, message", [("folder", "is a folder"), ("missing", "does not exist")])
def test_unwritable_targets_give_one_clear_error(tmp_path, where, message):
    target = tmp_path if where == "folder" else tmp_path / "no" / "such" / "out.txt"
    with pytest.raises(InputError, match=message):
        write_private_text(target, "x")
    with pytest.raises(StoreError, match=message), private_output(target, error=StoreError):
        pass


def test_a_full_disk_is_a_readable_error(tmp_path, monkeypatch):
    calls = []

    def fake_fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fake_fsync)
    with pytest.raises(InputError, match="No space left on device"):
        write_private_text(tmp_path / "x.jsonl", "data")
    assert calls
    assert list(tmp_path.iterdir()) == []


def test_an_output_never_replaces_the_input_or_the_session(tmp_path):
    source = tmp_path / "chains.jsonl"
    source.write_text("precious\n")
    with pytest.raises(InputError, match="input or session"):
        write_private_text(tmp_path / "." / "chains.jsonl", "scores", keep=(source, None))
    assert source.read_text() == "precious\n"
    assert write_private_text(tmp_path / "other.jsonl", "scores", keep=(source,)).read_text() == "scores"
