"""persona_core.io: the atomic writer and the record reader."""

from __future__ import annotations

import os
import stat

import pytest

from persona_core.io import atomic_output, read_records, write_json_atomic


def test_atomic_writer_keeps_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        with atomic_output(tmp_path / "folder", folder=True) as tmp:
            (tmp / "inside").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "folder"]  # no temporary left behind


def test_atomic_writer_leaves_nothing_on_failure_and_replaces_folders_whole(tmp_path):
    with atomic_output(tmp_path / "folder", folder=True) as tmp:
        (tmp / "old").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "folder", folder=True) as tmp:
            (tmp / "new").write_text("1")
            raise RuntimeError("killed")
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]
    with atomic_output(tmp_path / "folder", folder=True) as tmp:
        (tmp / "new").write_text("1")
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["new"]


def test_read_records_reads_jsonl_and_json_arrays(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n')
    (tmp_path / "b.json").write_text('[{"x": 1}, {"x": 2}]')
    assert read_records(tmp_path / "a.jsonl") == read_records(tmp_path / "b.json") == [{"x": 1}, {"x": 2}]
