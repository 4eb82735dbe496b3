"""The benchmark's data cache key: it must follow the generator's real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import data


def test_every_generator_pattern_matches_a_file() -> None:
    """A moved generator module must not leave the cache key reading files that are gone."""
    for pattern in data.GENERATOR_FILES:
        assert sorted(data.ROOT.glob(pattern)), f"{pattern} matches no file"


def test_a_change_to_any_generator_module_changes_the_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each module of demodata/ is part of the key, so a changed generator makes new data."""
    shutil.copytree(data.ROOT / "demodata", tmp_path / "demodata")
    (tmp_path / "tasks").mkdir()
    shutil.copy(data.ROOT / "tasks" / "schemas.py", tmp_path / "tasks" / "schemas.py")
    monkeypatch.setattr(data, "ROOT", tmp_path)
    before = data.generator_version()
    assert data.generator_version() == before
    for module in sorted((tmp_path / "demodata").glob("*.py")):
        text = module.read_text(encoding="utf-8")
        module.write_text(text + "\n# changed\n", encoding="utf-8")
        assert data.generator_version() != before, f"{module.name} is not in the key"
        module.write_text(text, encoding="utf-8")
    assert data.generator_version() == before


def test_no_generator_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any of its files the key cannot be made: say so instead of hashing nothing."""
    monkeypatch.setattr(data, "ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="generator"):
        data.generator_version()
