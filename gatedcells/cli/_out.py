"""The commands' output folder, checked before any training: named, a folder (or creatable as
one), writable, and not holding another run's results unless the user says what to do with
them. Every refusal is a :class:`UsageError` (one line, exit status 2) and leaves nothing
behind. After a Ctrl-C, :func:`interrupted` says what the folder holds and how to go on."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import shutil
import tempfile
from pathlib import Path

from ._runs import UsageError

# What `gatedcells train` writes into OUT (and OUT/checkpoints, with --checkpoint-every).
RESULTS = ("history.json", "params.npz", "curves.png", "timing.json")
CHECKPOINTS = "checkpoints"


def prepare_out(
    text: str, prog: str, *, results: bool = False, resume: bool = False, overwrite: bool = False
) -> Path:
    """The folder ``text`` (the ``--out`` of the command ``prog``), created and checked
    writable; with ``overwrite``, the checkpoints of the run it held are deleted.

    Refused: an empty name, a file, a path under a file, a folder that cannot be created or
    written (tested with an actual file, so that read-only mounts and immutable folders are
    caught even for root); with ``results`` (``gatedcells train``), a folder holding a run's
    results or checkpoints (:data:`RESULTS`, :data:`CHECKPOINTS`), unless ``overwrite``, or
    ``resume`` with checkpoints to go on from.

    Examples:
      >>> import tempfile
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     print(prepare_out(f"{tmp}/a/b", "gatedcells demo").is_dir())
      True
      >>> prepare_out("", "gatedcells demo")
      Traceback (most recent call last):
      ...
      gatedcells.cli._runs.UsageError: gatedcells demo: --out is empty; name a folder, e.g. --out runs/a
    """
    if not text.strip():
        raise UsageError(f"{prog}: --out is empty; name a folder, e.g. --out runs/a")
    out = Path(text)
    try:
        _refuse_files(out, prog)
        if results and out.is_dir():
            _refuse_results(out, prog, resume=resume, overwrite=overwrite)
        _make_writable_folder(out, prog)
        if results and overwrite and (out / CHECKPOINTS).is_dir():
            shutil.rmtree(out / CHECKPOINTS)
    except OSError as err:  # e.g. a folder above that cannot be read
        raise UsageError(f"{prog}: cannot use --out {out}: {_reason(err)}") from None
    return out


def _refuse_files(out: Path, prog: str) -> None:
    """Refuse ``out`` when it, or a folder above it, is not a folder."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{prog}: --out {out} is a file, not a folder")
    for above in out.parents:
        if above.exists():
            if not above.is_dir():
                raise UsageError(f"{prog}: --out {out} lies under {above}, a file, not a folder")
            return


def _refuse_results(out: Path, prog: str, *, resume: bool, overwrite: bool) -> None:
    """Refuse a folder holding the results or checkpoints of a run, but for ``overwrite``,
    or ``resume`` with checkpoints to resume from."""
    found = [name for name in RESULTS if (out / name).exists()]
    checkpoints = out / CHECKPOINTS
    has_checkpoints = checkpoints.is_dir() and any(checkpoints.iterdir())
    if has_checkpoints:
        found.append(f"{CHECKPOINTS}/")
    if not found or overwrite or (resume and has_checkpoints):
        return
    held = ", ".join(found)
    if resume:
        raise UsageError(
            f"{prog}: {out} holds a finished run's results ({held}) but no checkpoints to "
            "resume from; pass --overwrite to replace them, or choose another --out"
        )
    go_on = "--resume to go on with that run, " if has_checkpoints else ""
    raise UsageError(
        f"{prog}: {out} holds a run's results ({held}); pass {go_on}--overwrite to replace "
        "them, or choose another --out"
    )


def _make_writable_folder(out: Path, prog: str) -> None:
    """Create ``out`` (and the folders above it) and write and delete a probe file in it;
    on failure, remove the folders it created and refuse."""
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove(missing)
        raise UsageError(f"{prog}: cannot create --out {out}: {_reason(err)}") from None
    try:
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        fd, probe = tempfile.mkstemp(prefix=".gatedcells-probe-", dir=out)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        _remove(missing)
        raise UsageError(f"{prog}: cannot write into --out {out}: {_reason(err)}") from None


def _remove(folders: list[Path]) -> None:
    """Remove the (empty) ``folders`` this module created, deepest first."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def checkpoint_options(args: argparse.Namespace, checkpoints: Path, config: dict) -> dict:
    """``train_one``'s checkpoint options (another run's checkpoints were refused by
    :func:`prepare_out`)."""
    if args.checkpoint_every is None and not args.resume:
        return {}
    return dict(
        checkpoint_dir=checkpoints,
        resume=args.resume,
        config=config,
        checkpoint_every=args.checkpoint_every,
    )


def last_checkpoint(checkpoints: Path) -> int | None:
    """The step of the latest complete checkpoint in ``checkpoints``, or ``None``: orbax names
    a finished one by its step and one being written ``STEP.orbax-checkpoint-tmp-...``."""
    try:
        steps = [int(p.name) for p in checkpoints.iterdir() if p.name.isdigit() and p.is_dir()]
    except OSError:
        return None
    return max(steps, default=None)


def interrupted(parser: argparse.ArgumentParser, args: argparse.Namespace, out: Path) -> str:
    """What ``gatedcells train`` prints on Ctrl-C: whether a checkpoint was saved (its step)
    and the exact command that goes on from it (or starts again).

    Args:
      parser: ``train``'s parser, whose options spell the command.
      args: the options of the interrupted run.
      out: its ``--out`` folder.
    """
    step = last_checkpoint(out / CHECKPOINTS)
    if step is not None:  # go on from it; --overwrite would delete it
        command = command_line(parser, args, resume=True, overwrite=False)
        return (
            f"interrupted: the last checkpoint is step {step} of {args.steps}, in "
            f"{out / CHECKPOINTS}; go on from it with:\n  {command}"
        )
    if args.checkpoint_every is None and not args.resume:
        every = args.eval_every or max(1, args.steps // 10)
        command = command_line(parser, args, checkpoint_every=every)
        return (
            "interrupted: nothing was saved (without --checkpoint-every there is nothing to "
            f"--resume from); start again, saving every {every} steps, with:\n  {command}"
        )
    command = command_line(parser, args, resume=not args.overwrite)
    return (
        "interrupted before the first checkpoint: nothing was saved; start again "
        f"with:\n  {command}"
    )


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, **changes) -> str:
    """``gatedcells train`` with the options ``args`` (those that differ from the defaults,
    each by its long name, quoted for a POSIX shell), ``changes`` applied."""
    values = vars(args) | changes
    words = parser.prog.split()
    for action in parser._actions:
        value = values.get(action.dest)
        if not action.option_strings or action.dest == "help" or value is None:
            continue
        if action.nargs == 0:  # a flag
            words += [max(action.option_strings, key=len)] if value else []
        elif action.required or value != action.default:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
            words += [max(action.option_strings, key=len), text]  # --kernel 3,3
    return shlex.join(words)
