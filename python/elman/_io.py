"""elman.RNN.save / elman.load: a layer in one file, every option and weight, exactly.

The file is a NumPy .npz archive (a zip of .npy arrays), read with allow_pickle=False:
  "header": the UTF-8 bytes (uint8 array) of a JSON object
            {"format": "elman.RNN", "version": 1,
             "options": {input_size, hidden_size, num_layers, nonlinearity, bias, batch_first,
                         bidirectional, dtype ("float32" | "float64"),
                         activation_alpha, activation_beta, clip}}
  one array per weight, named as RNN.weights() names it (w_x_l0, w_y_l0, b_l0, ...,
  suffix _reverse), in the layer's dtype.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from typing import Any

import numpy as np

from . import _checks
from ._layer import RNN

FORMAT = "elman.RNN"
VERSION = 1
_OPTIONS = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
            "bidirectional", "activation_alpha", "activation_beta", "clip")


def save(layer: RNN, path) -> None:
    """Write `layer` to `path`, a file name (used exactly as given: np.savez would add
    '.npz' to a name without it, and load(path) would then not find the file) or a binary
    file object."""
    options = {name: getattr(layer, name) for name in _OPTIONS}
    options["dtype"] = layer.dtype.name
    header = json.dumps({"format": FORMAT, "version": VERSION, "options": options})
    # (typed Any: NumPy's stubs would match the ** entries against savez's allow_pickle)
    arrays: dict[str, Any] = {"header": np.frombuffer(header.encode(), np.uint8), **layer.weights()}
    if isinstance(_checks.file_argument("path", path, "write"), (str, bytes, os.PathLike)):
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    else:
        np.savez(path, **arrays)


def load(path) -> RNN:
    """The layer saved at `path`. A file that is not such a layer, or is truncated or
    corrupt, raises ValueError naming the path and the fault; one that cannot be opened
    (missing, a directory, no permission) raises open()'s OSError, as np.load would."""
    if isinstance(_checks.file_argument("path", path, "read"), (str, bytes, os.PathLike)):
        with open(path, "rb") as f:
            return _read(f, os.fsdecode(path))
    return _read(path, repr(path))


def _read(file, where: str) -> RNN:
    try:
        archive = np.load(file, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            if "header" not in archive.files:
                raise ValueError("no 'header' entry")
            zipped = archive.zip
            if zipped is None:  # (only once closed)
                raise ValueError("the archive is closed")
            for name in archive.files:
                _check_entry_size(zipped, name)
            header = json.loads(archive["header"].tobytes().decode())
            weights = {name: archive[name] for name in archive.files if name != "header"}
    # RuntimeError: zipfile's for an encrypted entry, and its NotImplementedError for an
    # unknown compression; json's RecursionError for a header nested too deep.
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError,
            json.JSONDecodeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{where}: not a readable elman model file: {e}") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{where}: not an elman model file (header format is not {FORMAT!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"{where}: file format version {header.get('version')!r}; this elman "
                         f"reads version {VERSION}")
    options = header.get("options")
    if not isinstance(options, dict) or set(options) != {*_OPTIONS, "dtype"}:
        raise ValueError(f"{where}: header options must be exactly {sorted({*_OPTIONS, 'dtype'})}")
    try:
        dtype = np.dtype(options["dtype"])
        for name, w in weights.items():
            if w.dtype != dtype:
                raise ValueError(f"weight {name} has dtype {w.dtype}, the header says {dtype}")
        return RNN.from_weights(weights, **options)
    except (ValueError, TypeError, MemoryError) as e:  # MemoryError: sizes no memory holds
        raise ValueError(f"{where}: inconsistent model: {e}") from e


def _check_entry_size(archive: zipfile.ZipFile, name: str) -> None:
    """An entry whose .npy header claims more bytes than the entry holds is refused before
    NumPy allocates them (a few bytes of header can claim terabytes)."""
    if name + ".npy" not in archive.namelist():  # (NumPy hands such an entry over as bytes)
        raise ValueError(f"entry {name!r} is not a .npy array")
    info = archive.getinfo(name + ".npy")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
    claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if claimed > info.file_size:
        raise ValueError(f"entry {name!r} claims shape {shape} of {dtype} ({claimed} bytes) in "
                         f"{info.file_size} bytes")
