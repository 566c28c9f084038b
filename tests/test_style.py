"""The codebase stays ``ruff check`` clean (config in pyproject.toml)."""

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_ruff_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(ROOT / ".venv" / "bin"))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    res = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_importing_tracegen_pulls_no_torch_or_matplotlib():
    code = ("import sys, tracegen, tracegen.cli, tracegen.locality, tracegen.tracemodel, tracegen.formats; "
            "tracegen.cli.build_parser(); "
            "print(','.join(m for m in ('torch', 'matplotlib', 'model', 'analysis') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""
