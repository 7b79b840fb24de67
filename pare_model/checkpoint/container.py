"""Read checkpoint files with ``torch.load(weights_only=True)``: tensors and plain data only.

PyTorch Lightning checkpoints also pickle the run's hyper-parameters. In PARE's released files
they are yacs ``CfgNode`` objects (dict subclasses); Lightning itself may store an
``AttributeDict``. With weights_only these would be refused, so those known dict-like classes
are read as plain ordered dicts; nothing in the file can run code. Any other class is refused
with a message that says how to strip the file down to its state dict.

Before ``torch.load`` reads a record, the sizes the zip declares for its members are checked against
the file's size and :data:`~pare_model.input_limits.MAX_LOAD_BYTES` (torch itself refuses a storage
whose declared size differs from its record, but only after reading the record); after, the payload
is walked with a bound on its values and depth (:func:`~pare_model.input_limits.check_loaded`), so
metadata that shares one list 2**60 times is refused before anything prints or converts it.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pare_model.errors import UserFacingError
from pare_model.input_limits import check_loaded, check_torch_file

# Dict-like hyper-parameter containers known to appear in Lightning checkpoints.
DICT_LIKE_GLOBALS = (
    "yacs.config.CfgNode",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
)

STRIP_HINT = (
    "Strip it to its weights in an environment you trust: "
    "python -c \"import torch; c = torch.load('IN', weights_only=False); "
    "torch.save({'state_dict': c['state_dict']}, 'OUT')\""
)


class CheckpointError(UserFacingError):
    """A checkpoint file is missing, unreadable, or does not fit the model."""


def read_checkpoint_file(path: str | Path) -> Any:
    """Load ``path`` with ``weights_only=True`` on the CPU; see the module docstring."""
    path = Path(path)
    if path.is_dir():
        inside = path / "model.pt"
        hint = f"did you mean {inside}?" if inside.is_file() else "pass the file itself"
        raise CheckpointError(
            f"checkpoint {path} is a folder, not a checkpoint file: {hint} (a .pt file written by `pare train`, "
            "e.g. <storage_path>/<run_name>/best/model.pt, or a released PARE .ckpt)"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a .ckpt or .pt file")
    try:
        check_torch_file(path)
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (zipfile.BadZipFile, RuntimeError, ValueError, pickle.UnpicklingError, EOFError, OSError) as error:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({error}); is the file complete?"
        ) from error
    refused = sorted(unsafe - set(DICT_LIKE_GLOBALS))
    if refused:
        raise CheckpointError(f"{path} contains objects that are not plain data: {', '.join(refused)}. {STRIP_HINT}")
    as_dicts: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
        (collections.OrderedDict, name) for name in sorted(unsafe)
    ]
    try:
        with torch.serialization.safe_globals(as_dicts):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise CheckpointError(f"cannot read {path} with weights_only=True: {error}. {STRIP_HINT}") from error
    check_loaded(payload, str(path), "its content")
    return payload
