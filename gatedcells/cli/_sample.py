"""``gatedcells sample``: text from a character LM that ``gatedcells train --task text`` trained.

The run's folder gives everything: its configuration (``history.json``, or the latest
checkpoint's for a run stopped before the end), its params (``params.npz``, or the latest
checkpoint's) and its text file (the vocabulary, in class order). The prompt is fed through
the cell's streaming step (:meth:`gatedcells.Cell.step`), then each next character is drawn
from the readout's softmax at ``temperature`` among the ``top_k`` likeliest, and fed back:
one jitted ``lax.scan`` for the prompt and one for the characters drawn.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._numbers import positive, positive_float
from ._out import CHECKPOINTS
from ._runs import UsageError, make_cell

PROG = "gatedcells sample"
# train's defaults, for a configuration that leaves a key out (``path``: the bundled file)
DEFAULTS = {"layers": 1, "forget_bias": 1.0, "update_bias": 1.0, "path": None}


def add_sample(sub) -> None:
    """The ``sample`` subcommand's parser."""
    sample = sub.add_parser(
        "sample",
        help="text from a character LM trained by 'gatedcells train --task text'",
        description=(
            "Loads the run in DIR (what 'gatedcells train --task text --out DIR' wrote: "
            "params.npz, or the latest checkpoint of a run stopped early), feeds PROMPT "
            "through the cell one character at a time and prints the prompt followed by "
            "LENGTH characters drawn one by one, each fed back as the next input."
        ),
        epilog="example: gatedcells sample --run runs/shakespeare --prompt ROMEO: --top-k 10",
    )
    add = sample.add_argument
    add(
        "--run",
        required=True,
        dest="run_dir",
        metavar="DIR",
        help="the folder of a 'gatedcells train --task text' run (its --out)",
    )
    add("--prompt", default="\n", help="the text fed first (default: a newline)")
    add("--length", type=positive, default=500, help="characters to draw (default: %(default)s)")
    add(
        "--temperature",
        type=positive_float,
        default=1.0,
        help="divides the logits: below 1 more conservative, above 1 more varied "
        "(default: %(default)s)",
    )
    add(
        "--top-k",
        type=int,
        default=0,
        metavar="K",
        help="draw among the K likeliest characters only; 0 for all (default: 0)",
    )
    add("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sample.set_defaults(run=_sample)


def _sample(args: argparse.Namespace) -> int:
    import jax

    if args.top_k < 0:
        raise UsageError(f"{PROG}: argument --top-k: must be 0 (all) or positive, got {args.top_k}")
    if not args.prompt:
        raise UsageError(f"{PROG}: argument --prompt: is empty; give at least one character")
    cell, params, vocab = load_run(args.run_dir)
    unknown = "".join(sorted(set(args.prompt) - set(vocab)))
    if unknown:
        raise UsageError(
            f"{PROG}: argument --prompt: characters not in the run's vocabulary: {unknown!r}"
        )
    prompt = [vocab.index(ch) for ch in args.prompt]
    top_k = min(args.top_k, len(vocab))
    tokens = generate(
        cell, params, prompt, args.length, args.temperature, top_k, jax.random.key(args.seed)
    )
    print(args.prompt + "".join(vocab[k] for k in tokens.tolist()))
    return 0


def generate(cell, params, prompt, length: int, temperature: float, top_k: int, key) -> Any:
    """``length`` classes ``[length]`` drawn after ``prompt`` (classes, at least one) from the
    model ``params = {"cell", "readout"}`` of ``gatedcells train``: the prompt through
    ``cell.step`` from a zero carry, then draw, feed back, draw. Jitted; ``top_k = 0``
    draws among every class."""
    import jax
    import jax.numpy as jnp

    classes = params["readout"]["b"].shape[-1]

    def read(carry, token):
        carry, y = cell.step(params["cell"], carry, jax.nn.one_hot(token, classes))
        return carry, y @ params["readout"]["w"] + params["readout"]["b"]

    def draw(state, key):
        carry, logits = state
        logits = logits / temperature
        if top_k:
            kth = jax.lax.top_k(logits, top_k)[0][-1]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        token = jax.random.categorical(key, logits)
        return read(carry, token), token

    @jax.jit
    def run(prompt, key):
        carry, logits = jax.lax.scan(read, cell.initial_carry(()), prompt)
        _, tokens = jax.lax.scan(draw, (carry, logits[-1]), jax.random.split(key, length))
        return tokens

    return run(jnp.asarray(prompt, jnp.int32), key)


def load_run(run: str):
    """``(cell, params, vocabulary)`` of the character-LM run in the folder ``run``; a folder
    that holds no such run is a :class:`UsageError` saying what it holds."""
    from gatedcells import tasks

    folder = Path(run)
    if not folder.is_dir():
        raise UsageError(f"{PROG}: --run {run}: no such folder")
    config, checkpoint = _config(folder)
    if config.get("task") != "text":
        raise UsageError(
            f"{PROG}: --run {run} is a run of --task {config.get('task')}, not a character LM "
            "(train one with: gatedcells train --task text ...)"
        )
    flags = DEFAULTS | config
    try:
        vocab = tasks.text_vocabulary(flags["path"])
        cell = make_cell(
            flags["cell"],
            flags["hidden"],
            forget_bias=flags["forget_bias"],
            update_bias=flags["update_bias"],
            layers=flags["layers"],
        )
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"{PROG}: --run {run}: cannot rebuild its model: {err}") from None
    like = _like(cell, len(vocab))
    try:
        params = _checkpoint_params(folder, like, config) if checkpoint else _npz(folder, like)
    except ValueError as err:
        raise UsageError(f"{PROG}: --run {run}: its params do not fit its model: {err}") from None
    return cell, params, vocab


def _config(folder: Path) -> tuple[dict, bool]:
    """``(the run's train configuration, whether its params are in a checkpoint only)``."""
    history = folder / "history.json"
    if (folder / "params.npz").is_file() and history.is_file():
        try:
            config = json.loads(history.read_text()).get("config")
        except (ValueError, AttributeError):
            config = None
        if isinstance(config, dict):
            return config, False
        raise UsageError(f"{PROG}: --run {folder}: history.json is not one of gatedcells train")
    if (folder / CHECKPOINTS).is_dir() and any((folder / CHECKPOINTS).iterdir()):
        return _checkpoint_config(folder / CHECKPOINTS), True
    raise UsageError(
        f"{PROG}: --run {folder} holds no run of gatedcells train (no history.json and "
        f"params.npz, no {CHECKPOINTS}/)"
    )


def _like(cell, classes: int) -> dict:
    """Params in the structure of ``train``'s for ``cell`` and ``classes`` characters."""
    import jax
    import jax.numpy as jnp

    readout = {"w": jnp.zeros((cell.output_size, classes)), "b": jnp.zeros((classes,))}
    return {"cell": cell.init(jax.random.key(0), classes), "readout": readout}


def _npz(folder: Path, like: dict) -> dict:
    from gatedcells import training

    return training.load_params(folder / "params.npz", like)


def _checkpoint_config(directory: Path) -> dict:
    from gatedcells.training import _checkpoint

    with _checkpoint.opened(directory) as mngr:
        meta = _checkpoint.read_meta(mngr)
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise UsageError(f"{PROG}: --run {directory.parent}: its checkpoints are not gatedcells'")
    return meta["config"]


def _checkpoint_params(folder: Path, like: dict, config: dict) -> dict:
    """The params of the latest checkpoint: restored into the state ``train`` saves (Adam
    behind the clip of ``--clip``)."""
    import jax
    import optax

    from gatedcells.training import TrainState, _checkpoint
    from gatedcells.training._state import clipped

    clip = config.get("clip_norm")  # fit_task's own record of the clip (None: none)
    state = TrainState.create(like, clipped(optax.adam(1e-3), clip), jax.random.key(0))
    with _checkpoint.opened(folder / CHECKPOINTS) as mngr:
        restored, _ = _checkpoint.restore(mngr, state, config, str(folder / CHECKPOINTS))
    return restored.params
