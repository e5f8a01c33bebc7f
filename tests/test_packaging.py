"""What a user installs: one version, the typed package, the data it ships and nothing else,
the extras named where they are missing, and a demo that needs only the `train` extra."""

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gatedcells

ROOT = Path(__file__).parents[1]
# a finder that makes the named top-level packages unimportable, as on a machine without them
BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)")
sys.meta_path.insert(0, Block())
"""


def run_python(code: str, *, blocked=(), cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK.format(blocked=set(blocked)) + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_version_is_the_package_metadata():
    assert gatedcells.__version__ == importlib.metadata.version("gatedcells")


def test_cli_version(capsys):
    from gatedcells import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"gatedcells {gatedcells.__version__}"


@pytest.mark.slow  # a fresh interpreter each
@pytest.mark.parametrize("module", ["gatedcells.linen", "gatedcells.nnx"])
def test_flax_modules_name_the_extra(module):
    result = run_python(
        f"""
try:
    import {module}
except ImportError as err:
    print(err)
else:
    print("imported")
""",
        blocked=("flax",),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{module} needs flax: pip install 'gatedcells[flax]'"


@pytest.mark.slow
def test_training_names_the_extra():
    result = run_python(
        """
try:
    import gatedcells.training
except ImportError as err:
    print(type(err).__name__, err)
else:
    print("imported")
""",
        blocked=("optax",),
    )
    assert result.returncode == 0, result.stderr
    expected = "ImportError gatedcells.training needs optax: pip install 'gatedcells[train]'"
    assert result.stdout.strip() == expected


@pytest.mark.slow
def test_core_needs_only_jax():
    blocked = ("flax", "optax", "orbax", "torch", "equinox", "sklearn", "matplotlib", "tqdm")
    blocked += ("mlxtend", "pandas")
    result = run_python("import gatedcells, gatedcells.diagnostics; print('ok')", blocked=blocked)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.mark.slow
def test_demo_needs_only_the_train_extra(tmp_path):
    """`make demo` installs the `train` extra only: the demo imports nothing beyond it."""
    blocked = ("flax", "torch", "equinox", "chex", "pytest", "hypothesis", "mnist1d", "sphinx")
    result = run_python(
        "from gatedcells import cli\n"
        f"raise SystemExit(cli.main(['demo', '--quick', '--quiet', '--out', {str(tmp_path)!r}]))",
        blocked=blocked,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "demo.png").exists()


@pytest.mark.slow
def test_wheel_contents(tmp_path):
    """The wheel holds the package, its data and its marker files, and nothing else: no
    tests, notebooks, benchmarks, docs or caches."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "gatedcells", source / "gatedcells", ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("gatedcells-*.whl")
    assert wheel.name.startswith(f"gatedcells-{gatedcells.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"gatedcells", f"gatedcells-{gatedcells.__version__}.dist-info"}, top
    package = [name for name in names if name.startswith("gatedcells/")]
    assert "gatedcells/py.typed" in package
    assert "gatedcells/tasks/data/tinyshakespeare.txt" in package
    unexpected = [
        n for n in package if not n.endswith((".py", "py.typed", "data/tinyshakespeare.txt"))
    ]
    assert not unexpected, unexpected
    assert not [n for n in names if "__pycache__" in n or "/tests/" in n or ".ipynb" in n]
    metadata = (
        zipfile.ZipFile(wheel)
        .read(f"gatedcells-{gatedcells.__version__}.dist-info/METADATA")
        .decode()
    )
    assert "Project-URL: Documentation" in metadata and "Project-URL: Changelog" in metadata
    assert "Provides-Extra: flax" in metadata and "Provides-Extra: train" in metadata
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(f"gatedcells-{gatedcells.__version__}.dist-info/entry_points.txt")
        .decode()
    )
    assert "gatedcells = gatedcells.cli:main" in entry_points


def test_changelog_is_in_the_docs():
    assert (ROOT / "CHANGELOG.md").read_text().startswith("# Changelog")
    assert "../CHANGELOG.md" in (ROOT / "docs" / "changelog.md").read_text()
