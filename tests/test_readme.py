"""The README's examples run as written, and print what their comments say."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
# blocks that need objects the reader brings (a torch module, a flax cell) are not run
RUNNABLE = [b for b in BLOCKS if "torch_module" not in b and "flax_cell" not in b]


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{k}" for k in range(len(RUNNABLE))])
def test_readme_block(block):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(README), "exec"), {})
    printed = [line for line in out.getvalue().splitlines() if line.strip()]
    promised = [m.strip() for m in re.findall(r"print\(.*?\)\s*#\s*(.*)", block)]
    assert printed == promised


def test_readme_is_a_front_page():
    """Short enough to read as the front page and as the package description."""
    assert len(README.read_text()) < 12_000


def test_readme_links_exist():
    """Every link of the README is absolute or a path of the repository (so it resolves on
    the repository's page; the docs pages it points to are the site's sources)."""
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    missing = [
        link
        for link in links
        if not re.match(r"[a-z]+://|#|mailto:", link)
        and not (README.parent / link.split("#")[0]).exists()
    ]
    assert not missing, missing


def test_demo_time_agrees_with_help(capsys):
    """The README states the demo's run time in the words of `gatedcells demo --help`."""
    from gatedcells import cli

    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    stated = re.search(r"About [^;.]*? on 2 CPU cores", " ".join(capsys.readouterr().out.split()))
    assert stated, "gatedcells demo --help states no run time"
    assert stated.group(0) in " ".join(README.read_text().split())
