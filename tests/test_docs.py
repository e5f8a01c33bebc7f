"""The documentation site builds offline with no warning, documents every public name, has no
broken link inside it, and its examples run as written.

The site is built once, in one test (so one xdist worker builds it): ``sphinx-build -W -n``
into a temporary folder, as ``make docs`` does, then the checks read what it wrote.
"""

import contextlib
import importlib
import importlib.util
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
# the public modules and how each names its public API (``__all__``, else its re-exports)
MODULES = (
    "gatedcells",
    "gatedcells.cells",
    "gatedcells.sequence",
    "gatedcells.sharding",
    "gatedcells.combinators",
    "gatedcells.training",
    "gatedcells.diagnostics",
    "gatedcells.tasks",
    "gatedcells.linen",
    "gatedcells.nnx",
    "gatedcells.interop",
    "gatedcells.zoo",
    "gatedcells.bench",
)


def public_names(module) -> list[str]:
    """``__all__``, or else every name the module defines or re-exports that is not private
    and not a module (``from ._x import name as name`` is the re-export idiom here)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or type(obj) is type(sys):
            continue
        home = getattr(obj, "__module__", None) or ""
        if home == module.__name__ or home.startswith(module.__name__ + "."):
            names.append(name)
    return names


def inventory(build: Path) -> dict[str, str]:
    """``{name: role}`` of every Python object the site documents (its ``objects.inv``)."""
    from sphinx.util.inventory import InventoryFile

    with open(build / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    data = inv.data if hasattr(inv, "data") else inv
    return {name: role for role, entries in data.items() for name in entries if "py:" in role}


def docs_conf():
    """``docs/conf.py`` as a module: its ``import_name`` resolves a dotted name."""
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def undocumented(documented: dict[str, str]) -> list[str]:
    """Public names documented neither under their own name nor as the same object under
    another public name (``gatedcells.cells.lstm`` is ``gatedcells.lstm``)."""
    import_name = docs_conf().import_name
    by_id = {id(import_name(name)) for name in documented}
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            full = f"{module_name}.{name}"
            if full not in documented and id(getattr(module, name)) not in by_id:
                missing.append(full)
    return missing


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


def broken_links(build: Path) -> list[str]:
    """Links from a page of the site to a file or anchor of the site that does not exist."""
    pages = {}
    for page in build.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        pages[page.resolve()] = parser
    broken = []
    for page, parser in pages.items():
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(build.resolve())}: {link}")
            elif parts.fragment and target in pages and parts.fragment not in pages[target].ids:
                broken.append(f"{page.relative_to(build.resolve())}: {link} (no such anchor)")
    return broken


@pytest.mark.slow
def test_site_builds_documents_everything_and_links_resolve(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    pytest.importorskip("myst_nb", reason="the docs extra is not installed")
    build = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "--keep-going", "-q"]
        + ["-d", str(tmp_path / "doctrees"), str(DOCS), str(build)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0 and "WARNING" not in result.stderr, (
        f"sphinx-build failed (exit {result.returncode}):\n{result.stderr[-6000:]}"
    )
    assert (build / "index.html").exists()
    missing = undocumented(inventory(build))
    assert not missing, f"public names missing from docs/api and docs/cells: {missing}"
    broken = broken_links(build)
    assert not broken, "broken links inside the site:\n" + "\n".join(broken)


# --- the examples of the pages run as written, and print what their comments say --------

PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
BLOCKS = [
    pytest.param(block, id=f"{page.relative_to(DOCS)}:{k}")
    for page in PAGES
    for k, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
    # blocks that need objects the reader brings (a torch module, a flax cell) are not run
    if "torch_module" not in block and "flax_cell" not in block
]


@pytest.mark.parametrize("block", BLOCKS)
def test_docs_example(block):
    import jax

    if ".serialize(" in block:  # jax.export's serializer needs a package jax does not install
        pytest.importorskip("flatbuffers", reason="jax.export serialization needs flatbuffers")

    out = io.StringIO()
    # user code, run as users run it: JAX's standard dtype promotion (optax's updates mix
    # Python floats and int32 counts), not the suite's strict one meant for the library
    with contextlib.redirect_stdout(out), jax.numpy_dtype_promotion("standard"):
        exec(compile(block, "docs", "exec"), {})
    printed = [line for line in out.getvalue().splitlines() if line.strip()]
    promised = [m.strip() for m in re.findall(r"print\(.*?\)\s*#\s*(.*)", block)]
    assert printed == promised
