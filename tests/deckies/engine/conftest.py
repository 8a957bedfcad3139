"""Engine test fixtures: a private data dir for compose files, and the golden-file comparison."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"


@pytest.fixture
def engine_data_dir(settings: Any, tmp_path: Path) -> Path:
    """Compose files of this test go under ``tmp_path`` instead of the project's data dir."""
    settings.DECNET_DATA_DIR = tmp_path
    return tmp_path


def assert_golden(name: str, text: str) -> None:
    """``text`` must equal ``golden/<name>``; ``DECNET_UPDATE_GOLDEN=1`` rewrites the file instead."""
    path = GOLDEN_DIR / name
    if os.environ.get("DECNET_UPDATE_GOLDEN") == "1" or not path.exists():
        path.write_text(text, encoding="utf-8")
        if os.environ.get("DECNET_UPDATE_GOLDEN") != "1":
            pytest.fail(f"golden file {name} did not exist and was written; review and commit it")
    assert text == path.read_text(encoding="utf-8"), f"rendered YAML differs from golden/{name}"
