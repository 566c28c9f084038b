"""The notebooks run top to bottom (nbclient, the venv's python3 kernel, Agg backend, a temporary cwd).

Each is small (under 60 s) and only calls package functions, so they never rot. The committed files
must have their outputs stripped.
"""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_fit_and_sample.ipynb", "02_dlrm_on_synthetic.ipynb",
                                          "03_locality_and_bandwidth.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_stripped(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"


def _execute(path: pathlib.Path, cwd: pathlib.Path) -> list:
    """Run the notebook with ``cwd`` as its folder; the error outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=NATIVE_KERNEL_NAME,
                                     resources={"metadata": {"path": str(cwd)}})
    # the venv's interpreter runs the kernel, whatever kernelspecs the machine has installed
    km = client.create_kernel_manager()
    km.kernel_spec.argv[0] = sys.executable
    client.execute()
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    """(cwd, tmp): the notebook's folder and the TMPDIR its kernel writes its outputs under."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return cwd, tmp


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, notebook_env):
    cwd, tmp = notebook_env
    assert not _execute(path, cwd)
    # re-runnable without clutter: nothing lands in the notebook's folder (a second "Run All" finds no
    # file to refuse); every output goes to a fresh temporary folder, whose path the notebook prints
    assert sorted(os.listdir(cwd)) == []
    made = [p for p in tmp.iterdir() if p.name.startswith("tracegen-")]
    assert len(made) == 1 and any(made[0].iterdir())


@pytest.mark.slow
def test_notebook_runs_twice_in_one_folder(notebook_env):
    cwd, tmp = notebook_env
    path = ROOT / "notebooks" / "01_fit_and_sample.ipynb"
    assert not _execute(path, cwd)
    assert not _execute(path, cwd)  # "Run All" again: the outputs of the first run refuse nothing
    assert len([p for p in tmp.iterdir() if p.name.startswith("tracegen-01-")]) == 2
