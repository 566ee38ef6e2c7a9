import json
import subprocess
import sys

import pytest

import crossrank


def test_build_info_reports_version_simd_and_threads():
    info = crossrank.build_info()
    assert info["version"] == crossrank.__version__
    assert "scalar" in info["simd_compiled"]
    assert info["simd_available"][0] == "scalar"
    assert info["simd_active"] in info["simd_available"]
    assert info["num_threads"] >= 1


def test_version_is_defined_once_in_pyproject():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', text, re.M).group(1) == crossrank.__version__


def test_simd_force_unknown_path_is_a_value_error():
    from crossrank import _core

    with pytest.raises(ValueError, match="expected one of"):
        _core.simd_force("sse9")
    _core.simd_force("scalar")
    assert _core.simd_active() == "scalar"
    _core.simd_force(None)


def test_cli_info_prints_json():
    out = subprocess.run(
        [sys.executable, "-m", "crossrank", "info"], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out)["version"] == crossrank.__version__
