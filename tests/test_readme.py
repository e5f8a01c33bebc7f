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
