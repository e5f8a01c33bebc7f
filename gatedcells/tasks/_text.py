"""Character-level language modelling over a UTF-8 text file (Tiny Shakespeare bundled)."""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ._task import Array, Task, check_sample, cross_entropy

TINY_SHAKESPEARE = Path(str(resources.files(__package__) / "data" / "tinyshakespeare.txt"))
"""The bundled Tiny Shakespeare (karpathy/char-rnn ``data/tinyshakespeare/input.txt``:
1,115,394 characters of Shakespeare's plays, public domain, 65 distinct characters)."""


def text(
    path: str | os.PathLike | None = None,
    seq_len: int = 100,
    *,
    test_fraction: float = 0.1,
) -> Task:
    r"""Character-level language modelling: predict each next character of a UTF-8 file.

    The vocabulary is the sorted set of the file's characters (:func:`text_vocabulary`);
    character ``k`` of it is the one-hot input ``k`` and the class ``k``. The file is split
    once, in order: the first ``1 - test_fraction`` of its characters train, the held-out
    tail tests. ``sample`` draws windows of ``seq_len + 1`` characters at uniform offsets
    of the training part; the inputs are the first ``seq_len`` characters, the targets the
    ``seq_len`` that follow them (the input shifted by one). ``test`` cuts the tail into
    consecutive windows (each predicts the next ``seq_len`` characters, from a fresh carry),
    so it scores every held-out character but the last few (fewer than ``seq_len``).
    Every step is predicted (``per_step``).

    The loss is the cross-entropy per character in nats; the metric the same in bits per
    character (:math:`\mathrm{loss} / \ln 2`), the figure language models are compared by.
    Chance level: a uniform guess over the ``V`` characters, :math:`\log_2 V` bits per
    character (6.02 for the 65 of Tiny Shakespeare, whose character frequencies alone, with
    no context, give 4.8).

    Args:
      path: a UTF-8 text file; ``None``: the bundled Tiny Shakespeare
        (:data:`TINY_SHAKESPEARE`).
      seq_len: ``T >= 2``, the characters per training window.
      test_fraction: the share of the file, at its end, held out for ``test``, in
        ``(0, 1)``.

    Returns:
      A :class:`Task` with one-hot inputs ``[B, T, V]`` float32, int32 targets ``[B, T]``
      (the next character of every step), ``V`` outputs per step, and
      ``test = (inputs [N, T, V], targets [N, T])``.

    Raises:
      FileNotFoundError: ``path`` is not a file.
      ValueError: a file that is not UTF-8 text, ``seq_len < 2``, a ``test_fraction`` out
        of ``(0, 1)``, or a file whose training part or tail is shorter than
        ``seq_len + 1`` characters.
      TypeError: ``path`` neither a path nor ``None``.

    Examples:
      >>> import jax, gatedcells.tasks as tasks
      >>> task = tasks.text(seq_len=50)
      >>> xs, ys = task.sample(jax.random.key(0), 4)
      >>> xs.shape, ys.shape, task.output_size, round(task.baseline_metric, 3)
      ((4, 50, 65), (4, 50), 65, 6.022)
      >>> bool((xs[:, 1:].argmax(-1) == ys[:, :-1]).all())   # targets: the inputs shifted
      True

    References:
      Karpathy, "The Unreasonable Effectiveness of Recurrent Neural Networks", 2015
      (https://github.com/karpathy/char-rnn).
      Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850, 2013.
    """
    T = _check_seq_len(seq_len)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float):
        raise TypeError(f"test_fraction must be a float in (0, 1), got {test_fraction!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    file, points = _read(path)
    vocab, ids = np.unique(points, return_inverse=True)
    ids = ids.astype(np.int32)
    V = len(vocab)
    split = int(round(len(ids) * (1 - test_fraction)))
    train, tail = ids[:split], ids[split:]
    shortest = min(len(train), len(tail))
    if shortest < T + 1:
        raise ValueError(
            f"seq_len={T} needs at least {T + 1} characters in both parts of {file.name}, got "
            f"{len(train)} to train and {len(tail)} held out (test_fraction={test_fraction}); "
            "choose a smaller seq_len or a longer file"
        )
    windows = (len(tail) - 1) // T
    starts = np.arange(windows)[:, None] * T + np.arange(T + 1)[None, :]  # [N, T + 1]
    held_out = tail[starts]
    x_test = jax.nn.one_hot(held_out[:, :-1], V, dtype=jnp.float32)
    y_test = jnp.asarray(held_out[:, 1:])
    train = jnp.asarray(train)
    offsets = jnp.arange(T + 1, dtype=jnp.int32)

    def sample(key: Array, batch_size: int) -> tuple[Array, Array]:
        check_sample(key, batch_size)
        first = jax.random.randint(key, (batch_size, 1), 0, train.shape[0] - T, jnp.int32)
        window = train[first + offsets[None, :]]  # [B, T + 1]
        return jax.nn.one_hot(window[:, :-1], V, dtype=jnp.float32), window[:, 1:]

    def bits_per_character(logits: Array, labels: Array) -> Array:
        return cross_entropy(logits, labels) / jnp.log(jnp.float32(2.0))

    return Task(
        name=f"text({file.name}, T={T})",
        sample=sample,
        input_size=V,
        output_size=V,
        length=T,
        per_step=True,
        loss=cross_entropy,
        metric=bits_per_character,
        metric_name="bits_per_char",
        higher_is_better=False,
        baseline_loss=math.log(V),
        baseline_metric=math.log2(V),
        test=(x_test, y_test),
    )


def text_vocabulary(path: str | os.PathLike | None = None) -> str:
    """The characters of :func:`text`'s vocabulary for ``path``, in class order.

    ``vocab[k]`` is the character of one-hot input ``k`` and of output class ``k``: decode
    a sequence of classes with ``"".join(vocab[k] for k in classes)``.

    Raises:
      FileNotFoundError, ValueError, TypeError: as :func:`text` for ``path``.

    Examples:
      >>> import gatedcells.tasks as tasks
      >>> vocab = tasks.text_vocabulary()
      >>> len(vocab), vocab[:3], vocab[-3:]
      (65, '\\n !', 'xyz')
    """
    _, points = _read(path)
    return "".join(map(chr, np.unique(points).tolist()))


def _check_seq_len(seq_len) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int | np.integer) or seq_len < 2:
        raise ValueError(f"seq_len must be an int >= 2, got {seq_len!r}")
    return int(seq_len)


def _read(path) -> tuple[Path, np.ndarray]:
    """``(the file, its characters as Unicode code points [N] uint32)``, checked."""
    if path is None:
        file = TINY_SHAKESPEARE
    elif isinstance(path, str | os.PathLike):
        file = Path(path)
    else:
        raise TypeError(f"path must be a file path or None, got {path!r}")
    if not file.is_file():
        raise FileNotFoundError(f"path: no such file: '{file}'")
    raw = file.read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"path: '{file}' is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    if not content:
        raise ValueError(f"path: '{file}' is empty")
    # one code point per character, without a Python loop over them
    return file, np.frombuffer(content.encode("utf-32-le"), np.dtype("<u4"))
