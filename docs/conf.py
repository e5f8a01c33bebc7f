"""Sphinx configuration of the gatedcells documentation (``make docs``).

Built offline: the notebooks are rendered with their committed outputs (never re-executed),
MathJax is vendored in ``_static/mathjax``, and no inventory is fetched: links into jax, flax
and optax are plain URLs, unless an inventory is vendored in ``_inventories/NAME.inv`` (then
intersphinx reads it from disk). Warnings are errors (``-W``) and every cross-reference must
resolve (``-n``): ``tests/test_docs.py`` builds the site in the test suite.
"""

import importlib.metadata
from pathlib import Path

from sphinx.util.nodes import make_refnode

project = "gatedcells"
author = "gatedcells developers"
copyright = "2026, gatedcells developers"
release = importlib.metadata.version("gatedcells")
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"

# the notebooks (docs/notebooks links to ../notebooks): rendered as committed, with outputs
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# the API reference, from the docstrings (Google style)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True  # defaults as written, not a function's repr
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
add_module_names = False

# Inventories of other projects, read from disk only: none is fetched at build time, so a
# project whose inventory is not vendored is skipped (its names are not checked below).
INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "jax": "https://docs.jax.dev/en/latest/",
    "flax": "https://flax.readthedocs.io/en/latest/",
    "optax": "https://optax.readthedocs.io/en/latest/",
}
_vendored = Path(__file__).parent / "_inventories"
intersphinx_mapping = {
    name: (url, str(_vendored / f"{name}.inv"))
    for name, url in INVENTORIES.items()
    if (_vendored / f"{name}.inv").is_file()
}
if intersphinx_mapping:
    extensions.append("sphinx.ext.intersphinx")

# Every reference to a gatedcells name must resolve; names of other projects are not
# checked (there is no offline inventory of them), nor the docstrings' type words.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jnp|np|numpy|flax|nn|nnx|optax|orbax|chex|torch|tqdm|matplotlib)\..*"),
    (r"py:.*", r"(collections|typing|types|pathlib|os|argparse|dataclasses|enum)\..*"),
    (r"py:.*", r"(Array|ArrayLike|Params|Carry|Gates|Any|Callable|Sequence|Mapping|Literal)"),
    (r"py:.*", r"(Path|PathLike|Iterable|Iterator|NamedTuple|TypeVar|Dtype|DTypeLike|PRNGKey)"),
    (r"py:.*", r"(InitFn|CarryFn|ProjectFn|UpdateFn|CheckParamsFn|ScanFn|Module|Mesh|Key)"),
    (r"py:.*", r"(optional|default.*|callable|pytree|array.*|None|int|float|bool|str|bytes)"),
    (r"py:.*", r"(tuple|list|dict|set|object|type|complex|slice|Ellipsis).*"),
    # the type aliases of the cell's fields (Callable signatures, spelled out in Cell's doc)
    (r"py:class", r"gatedcells\._cell\.(InitFn|CarryFn|ProjectFn|UpdateFn|CheckParamsFn|ScanFn)"),
]

html_theme = "furo"
html_title = "gatedcells"
html_static_path = ["_static"]
mathjax_path = "mathjax/tex-chtml.js"  # vendored: the site renders math offline
html_theme_options = {"source_directory": "docs/", "sidebar_hide_name": False}
suppress_warnings = ["myst.header"]


def import_name(dotted: str):
    """The object a dotted path names, or ``None``."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for part in parts[k:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


_documented: dict[int, str] = {}


def documented_name(domain, obj) -> str | None:
    """The name under which ``obj`` is documented: docstrings and type hints name an object
    by the private module that defines it (``gatedcells.cells._lstm.LSTMParams``), the pages
    by where users import it (``gatedcells.LSTMParams``)."""
    if not _documented:
        for name in domain.objects:
            if name.startswith("gatedcells"):
                _documented.setdefault(id(import_name(name)), name)
        _documented.pop(id(None), None)
    return _documented.get(id(obj))


def resolve_private(app, env, node, contnode):
    """``missing-reference``: resolve a reference to a gatedcells object by the object, so
    that a name written relative to a private module finds the public page."""
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    target = node["reftarget"].lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    scopes = [f"{module}.{cls}", module] if module and cls else [module] if module else []
    for candidate in [*(f"{scope}.{target}" for scope in scopes), target]:
        name = candidate if candidate in domain.objects else None
        if name is None and candidate.startswith("gatedcells"):
            obj = import_name(candidate)
            name = documented_name(domain, obj) if obj is not None else None
        if name is not None:
            entry = domain.objects[name]
            return make_refnode(
                app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name
            )
    return None


def setup(app):
    app.connect("builder-inited", lambda app: _documented.clear())
    app.connect("missing-reference", resolve_private)
