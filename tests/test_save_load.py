"""RNN.save / elman.load: exact round trips of every option and weight; clear errors for
files that are not elman layers, truncated or inconsistent. Also pickle and copy, which
process pools and model ensembles use."""

import copy
import io
import json
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

import elman
from helpers import rng_for, uniform


@pytest.mark.parametrize("options", [
    dict(),
    dict(num_layers=3, bidirectional=True, batch_first=True, bias=False, dtype=np.float64),
    dict(nonlinearity="hard_sigmoid", activation_alpha=0.3, activation_beta=0.1, clip=2.5),
    dict(nonlinearity="thresholded_relu", activation_alpha=1e-7, num_layers=2),
])
def test_round_trip_is_exact(options, tmp_path):
    layer = elman.RNN(4, 6, seed=1, **options)
    path = tmp_path / "layer.npz"
    layer.save(path)
    back = elman.load(path)
    assert repr(back) == repr(layer)
    assert back.weights().keys() == layer.weights().keys()
    for name, w in layer.weights().items():
        assert back.weights()[name].dtype == w.dtype
        np.testing.assert_array_equal(back.weights()[name], w)
    x = np.random.default_rng(0).standard_normal((5, 2, 4) if not layer.batch_first else (2, 5, 4))
    for a, b in zip(layer(x), back(x)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("as_path", [str, bytes])
def test_round_trip_through_a_str_or_bytes_path(as_path, tmp_path):
    layer = elman.RNN(2, 3, seed=2)
    path = as_path(tmp_path / "layer")  # no suffix added
    layer.save(path)
    assert (tmp_path / "layer").exists() and repr(elman.load(path)) == repr(layer)


def test_file_object_round_trip():
    layer = elman.RNN(2, 3, seed=2)
    buffer = io.BytesIO()
    layer.save(buffer)
    buffer.seek(0)
    assert repr(elman.load(buffer)) == repr(layer)


@pytest.mark.parametrize("name", ["layer.elman", "layer", "layer.NPZ"])
def test_path_is_used_exactly(name, tmp_path):
    # np.savez alone would write "layer.elman.npz", which load("layer.elman") cannot find
    layer = elman.RNN(2, 3, seed=2)
    layer.save(str(tmp_path / name))
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert repr(elman.load(tmp_path / name)) == repr(layer)


def saved(tmp_path, mutate=None):
    path = tmp_path / "layer.npz"
    elman.RNN(2, 3, num_layers=2, seed=3).save(path)
    if mutate:
        with np.load(path) as f:
            arrays = dict(f)
        header = json.loads(arrays["header"].tobytes())
        mutate(header, arrays)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        np.savez(path, **arrays)
    return path


def test_truncated_file(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"{path}: not a readable elman model file"):
            elman.load(path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a readable elman model file"):
        elman.load(path)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        elman.load(tmp_path / "a.npy")
    np.savez(tmp_path / "b.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="no 'header' entry"):
        elman.load(tmp_path / "b.npz")


def test_a_file_that_cannot_be_opened_is_open_s_error(tmp_path):
    for path in (tmp_path / "missing.npz", str(tmp_path / "missing.npz"), bytes(tmp_path / "missing.npz")):
        with pytest.raises(FileNotFoundError, match="missing.npz"):
            elman.load(path)
    with pytest.raises(IsADirectoryError):
        elman.load(tmp_path)


def _with_zip_flags(data: bytes, flags=0, method=None) -> bytes:
    """A zip archive's bytes with every entry's general-purpose flags or'ed with `flags`
    and its compression method set to `method`, in local and central headers."""
    data = bytearray(data)
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # flags; the method follows
        i = data.find(signature)
        while i >= 0:
            data[i + at] |= flags
            if method is not None:
                data[i + at + 2:i + at + 4] = method.to_bytes(2, "little")
            i = data.find(signature, i + 4)
    return bytes(data)


@pytest.mark.parametrize("fault", ["encrypted", "unknown compression", "header nested too deep"])
def test_archive_faults_are_value_errors_naming_the_path(fault, tmp_path):
    """Faults that zipfile and json raise as RuntimeError, NotImplementedError and
    RecursionError are, like the others, a ValueError naming the path."""
    path = saved(tmp_path)
    if fault == "header nested too deep":
        with np.load(path) as f:
            arrays = dict(f)
        arrays["header"] = np.frombuffer(b"[" * 100_000 + b"]" * 100_000, np.uint8)
        np.savez(path, **arrays)
    else:
        good = path.read_bytes()
        path.write_bytes(_with_zip_flags(good, flags=1) if fault == "encrypted" else _with_zip_flags(good, method=99))
    with pytest.raises(ValueError, match=f"{path}: not a readable elman model file"):
        elman.load(path)


@pytest.mark.parametrize("not_a_file", [123, None, 1.5, [b"layer.npz"]])
def test_path_that_is_not_a_file_names_the_argument(not_a_file):
    with pytest.raises(TypeError, match="^path: expected a file name .* or a binary file object with .read"):
        elman.load(not_a_file)
    with pytest.raises(TypeError, match="^path: expected a file name .* or a binary file object with .write"):
        elman.RNN(3, 4).save(not_a_file)


def test_pickled_arrays_are_refused(tmp_path):
    path = saved(tmp_path)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["w_x_l0"] = np.array([object()], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="not a readable elman model file"):
        elman.load(path)


def _set(key, value):
    return lambda header, arrays: header.__setitem__(key, value)


@pytest.mark.parametrize("mutate,match", [
    (_set("format", "other"), "header format"),
    (_set("version", 99), "version 99"),
    (lambda h, a: h["options"].pop("clip"), "header options must be exactly"),
    (lambda h, a: h["options"].__setitem__("hidden_size", 4), "inconsistent model"),
    (lambda h, a: h["options"].__setitem__("nonlinearity", "swish"), "inconsistent model: nonlinearity"),
    (lambda h, a: a.pop("w_y_l1"), "missing \\['w_y_l1'\\]"),
    (lambda h, a: a.__setitem__("b_l0", a["b_l0"].astype(np.float64)), "b_l0 has dtype float64"),
    (lambda h, a: a.__setitem__("b_l0", a["b_l0"][:2]), "inconsistent model: b_l0"),
])
def test_malformed_header_or_weights(mutate, match, tmp_path):
    path = saved(tmp_path, mutate)
    with pytest.raises(ValueError, match=f"{path}: .*{match}"):
        elman.load(path)


@pytest.mark.parametrize("hidden_size", [8000, 10**9])
def test_header_sizes_that_its_weights_lack(hidden_size, tmp_path):
    """A file whose header claims a large layer, without its weights, is refused naming the
    path: with little memory used (a layer of random weights was built first: 1.5 GB at
    H = 8000, two layers), or no memory holding such a layer (a bare MemoryError)."""
    path = saved(tmp_path, lambda h, a: h["options"].update(hidden_size=hidden_size, input_size=hidden_size))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"{path}: inconsistent model"):
            elman.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**25, f"{peak / 2**20:.0f} MiB allocated to refuse a file of {path.stat().st_size} bytes"


def test_an_entry_whose_shape_no_memory_holds(tmp_path):
    path = saved(tmp_path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (10**12,)})
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("huge.npy", header.getvalue() + bytes(16))  # (the header starts with the magic)
    with pytest.raises(ValueError, match=f"{path}: not a readable elman model file: entry 'huge' claims"):
        elman.load(path)  # (not MemoryError, and no allocation tried)
    path = saved(tmp_path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.txt", b"not an array")
    with pytest.raises(ValueError, match="entry 'notes.txt' is not a .npy array"):
        elman.load(path)


def test_format_is_an_npz_with_a_json_header(tmp_path):
    path = saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        assert set(z.namelist()) == {"header.npy", "w_x_l0.npy", "w_y_l0.npy", "b_l0.npy",
                                     "w_x_l1.npy", "w_y_l1.npy", "b_l1.npy"}
    with np.load(path, allow_pickle=False) as f:
        header = json.loads(f["header"].tobytes())
    assert header["format"] == "elman.RNN" and header["version"] == 1
    assert header["options"]["dtype"] == "float32" and header["options"]["num_layers"] == 2


COPIES = {"pickle": lambda layer: pickle.loads(pickle.dumps(layer)), "deepcopy": copy.deepcopy,
          "copy": copy.copy}


@pytest.mark.parametrize("how", sorted(COPIES))
def test_pickles_and_copies_compute_the_same(how):
    """A copy (or a pickle round trip) of a layer that has run has the same options and
    weights, gives bit-identical outputs, keeps its weights read-only, and is independent:
    assigning its weights leaves the original alone."""
    layer = elman.RNN(5, 7, 2, nonlinearity="relu", bidirectional=True, batch_first=True,
                      dtype=np.float64, seed=3, clip=2.0)
    x = uniform(rng_for("copies", how), (3, 4, 5), dtype=np.float64)
    y, h_n = layer(x)                                          # the packed engine exists
    other = COPIES[how](layer)
    assert repr(other) == repr(layer) and other.device == "cpu"
    assert all(np.array_equal(w, other.weights()[k]) for k, w in layer.weights().items())
    y2, h2 = other(x)
    assert np.array_equal(y2, y) and np.array_equal(h2, h_n)
    with pytest.raises(ValueError, match="read-only"):
        other.w_y_l0[0, 0] = 1.0
    other.w_y_l0 = np.zeros((7, 7))
    assert not np.array_equal(other(x)[0], y)
    assert np.array_equal(layer(x)[0], y) and not np.array_equal(layer.w_y_l0, other.w_y_l0)
