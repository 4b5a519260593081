"""quant_info.json and bias_corr.npz: named hostile edits and seeded mutations.

Every edit either is rejected with one `QuantizerError` naming the file (and the entry), or, for edits
that keep the file valid (a fix_pos moved within range, a small correction), quantizes consistently:
the test-mode model, the `_int.xmodel` it writes and that file read back agree, and the outputs are
finite. Edits of the must-reject kinds (types, bit widths, fractional / out-of-range fix positions,
missing or extra entries, NaN / huge / misshaped corrections, truncated archives) must be rejected.
A Python exception that is not a `FixflowError` is always a failure.

`FIXFLOW_FUZZ_SEED` explores other seeds; the slow sweep runs many more cases.
"""

from __future__ import annotations

import copy
import io
import json
import os
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from fixflow.backends.xmodel.fix_xmodel import module_to_xgraph, xgraph_to_module
from fixflow.ir.diagnostics import FixflowError
from fixflow.ir.interpreter import find_function
from fixflow.quantizer import Quantizer, QuantizerError
from fixflow.runtime.fix_executor import simulate_quantized

SEED = int(os.environ.get("FIXFLOW_FUZZ_SEED", "2026"))
BW = 4   # bias correction writes corrections at 4 bits on this net


class Tiny(nn.Module):
    """conv-relu, a conv with a residual add, pooling, linear: every kind of entry, `relu` called 3 times."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        a = self.relu(self.c1(x))
        b = self.relu(self.c2(a)) + a
        return self.fc(torch.flatten(self.pool(self.relu(b)), 1))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """(model, inputs, calib dir, a float-mode quantizer to clone per case, reference output)."""
    torch.manual_seed(0)
    model = Tiny().eval()
    x = torch.randn(4, 1, 8, 8)
    d = tmp_path_factory.mktemp("calib")
    q = Quantizer(model, (x[:1],), mode="calib", output_dir=d, log=None, progress=False, bitwidth=BW)
    q.quant_model(x)
    q.export_quant_config()
    assert (d / "bias_corr.npz").exists()
    base = Quantizer(model, (x[:1],), mode="float", output_dir=d, log=None, progress=False, bitwidth=BW)
    ref = _run_test_mode(base, d, x.numpy())
    return model, x.numpy(), d, base, ref


def _run_test_mode(base: Quantizer, out_dir: Path, x: np.ndarray) -> np.ndarray:
    """What Quantizer(mode="test") does, on a clone of `base`'s prepared graph (fast: no re-import);
    also writes the _int.xmodel graph and reads it back, which must give the same output."""
    q = copy.copy(base)
    q.module = base.module.clone()
    q.func = find_function(q.module)
    q.output_dir = out_dir
    q.mode = "test"
    q._load_quant_info()
    q._lower()
    y = simulate_quantized(q.fix_module, [x])[0]
    back = xgraph_to_module(module_to_xgraph(q.fix_module, q.name))
    yb = simulate_quantized(back, [x])[0]
    np.testing.assert_array_equal(y, yb)
    assert np.isfinite(y).all()
    return y


def _case_dir(calib: Path, tmp: Path, name: str) -> Path:
    d = tmp / name
    d.mkdir()
    for f in ("quant_info.json", "bias_corr.npz"):
        shutil.copy(calib / f, d / f)
    return d


def _expect(calibrated, d: Path, must_reject: bool, what: str) -> None:
    _, x, _, base, ref = calibrated
    try:
        _run_test_mode(base, d, x)
    except QuantizerError as e:
        msg = e.message
        assert "quant_info.json" in msg or "bias_corr.npz" in msg, f"{what}: the message names no file: {msg}"
        assert "\n" not in msg
        return
    except FixflowError as e:
        if must_reject:
            return   # rejected by a later, located check (e.g. the fix dialect's legality rules)
        raise AssertionError(f"{what}: valid edit rejected: {e}") from None
    except Exception as e:  # noqa: BLE001 - the point of the test
        raise AssertionError(f"{what}: {type(e).__name__}: {e}") from e
    assert not must_reject, f"{what}: accepted"


# ---- named examples of issue 8 ---------------------------------------------------------------------
def _edit_info(d: Path, fn) -> None:
    info = json.loads((d / "quant_info.json").read_text())
    new = fn(info)
    if isinstance(new, tuple):   # ("replace", value): a new top-level value
        info = new[1]
    (d / "quant_info.json").write_text(json.dumps(info))


def _first(section):
    return lambda i: next(iter(i[section]))


NAMED_INFO = {
    "output-null": lambda i: i.update(output=None),
    "param-list": lambda i: i.update(param=[]),
    "top-list": lambda i: ("replace", []),
    "top-null": lambda i: ("replace", None),
    "entry-null": lambda i: i["output"].update({_first("output")(i): None}),
    "entry-empty": lambda i: i["output"].update({_first("output")(i): []}),
    "entry-flat": lambda i: i["output"].update({_first("output")(i): [BW, 3]}),
    "entry-3": lambda i: i["output"].update({_first("output")(i): [[BW, 3, 1]]}),
    "bw-string": lambda i: i["param"].update({_first("param")(i): [["4", 3]]}),
    "bw-bool": lambda i: i["param"].update({_first("param")(i): [[True, 3]]}),
    "bw-0": lambda i: i["output"].update({_first("output")(i): [[0, 3]]}),
    "bw-1": lambda i: i["output"].update({_first("output")(i): [[1, 3]]}),
    "bw-64": lambda i: i["input"].update({_first("input")(i): [[64, 3]]}),
    "bw-other": lambda i: i["output"].update({_first("output")(i): [[8, 3]]}),
    "fp-fraction": lambda i: i["output"].update({_first("output")(i): [[BW, 2.5]]}),
    "fp-float-int": lambda i: i["output"].update({_first("output")(i): [[BW, 3.0]]}),
    "fp-huge": lambda i: i["param"].update({_first("param")(i): [[BW, 10 ** 9]]}),
    "fp-very-negative": lambda i: i["param"].update({_first("param")(i): [[BW, -4000]]}),
    "missing-node": lambda i: i["output"].pop(_first("output")(i)),
    "extra-node": lambda i: i["output"].update({"Tiny::nothing": [[BW, 2]]}),
    "missing-param": lambda i: i["param"].pop(_first("param")(i)),
    "extra-param": lambda i: i["param"].update({"Tiny::c9.weight": [[BW, 2]]}),
    "missing-input": lambda i: i["input"].clear(),
    "extra-input": lambda i: i["input"].update({"Tiny::y": [[BW, 2]]}),
    "unknown-key": lambda i: i.update(surprise=1),
    "bias_corrected-string": lambda i: i.update(bias_corrected="yes"),
    "fast_finetuned": lambda i: i.update(fast_finetuned=True),
    "md5-number": lambda i: i.update(graph_md5=5),
    "options-int": lambda i: i["fixflow_graph_options"].update(include_cle=1),
    "options-unknown": lambda i: i["fixflow_graph_options"].update(fold=True),
}


@pytest.mark.parametrize("name", sorted(NAMED_INFO))
def test_named_quant_info_edits_are_rejected(calibrated, tmp_path, name):
    d = _case_dir(calibrated[2], tmp_path, name)
    _edit_info(d, NAMED_INFO[name])
    _expect(calibrated, d, True, name)


@pytest.mark.parametrize("text", ["", "{", "nan", "[1, 2", '{"param": NaN}', "\xff\xfe", '{"a": Infinity}'])
def test_unreadable_quant_info(calibrated, tmp_path, text):
    d = _case_dir(calibrated[2], tmp_path, "t")
    (d / "quant_info.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(QuantizerError, match="quant_info.json"):
        _run_test_mode(calibrated[3], d, calibrated[1])


def _edit_corr(d: Path, fn) -> None:
    with np.load(d / "bias_corr.npz") as z:
        arrays = {k: z[k] for k in z.files}
    new = fn(arrays)
    arrays = arrays if new is None else new
    np.savez(d / "bias_corr.npz", **arrays)


def _one(fn):
    def edit(a):
        k = sorted(a)[0]
        a[k] = fn(a[k])
    return edit


NAMED_CORR = {
    "nan": _one(lambda c: np.where(np.arange(c.size) == 1, np.nan, c).astype(np.float32)),
    "inf": _one(lambda c: np.full_like(c, np.inf)),
    "1e30": _one(lambda c: np.full_like(c, 1e30)),
    "shape-short": _one(lambda c: c[:-1]),
    "shape-2d": _one(lambda c: c.reshape(1, -1)),
    "scalar": _one(lambda c: np.float32(0.1)),
    "int-dtype": _one(lambda c: c.astype(np.int32)),
    "string": _one(lambda c: np.array(["a", "b"])),
    "unknown-key": lambda a: a.update({"Tiny::c9.bias": np.zeros(4, np.float32)}),
    "empty-archive": lambda a: {},
}


@pytest.mark.parametrize("name", sorted(NAMED_CORR))
def test_named_bias_corr_edits_are_rejected(calibrated, tmp_path, name):
    d = _case_dir(calibrated[2], tmp_path, name)
    _edit_corr(d, NAMED_CORR[name])
    _expect(calibrated, d, True, name)


@pytest.mark.parametrize("cut", [0, 10, 100, -30, -1])
def test_truncated_bias_corr(calibrated, tmp_path, cut):
    d = _case_dir(calibrated[2], tmp_path, "t")
    data = (d / "bias_corr.npz").read_bytes()
    (d / "bias_corr.npz").write_bytes(data[:cut])
    _expect(calibrated, d, True, f"truncated at {cut}")


def test_missing_bias_corr(calibrated, tmp_path):
    d = _case_dir(calibrated[2], tmp_path, "t")
    (d / "bias_corr.npz").unlink()
    with pytest.raises(QuantizerError, match="bias_corr.npz is missing"):
        _run_test_mode(calibrated[3], d, calibrated[1])


def test_unmodified_files_reproduce_the_reference(calibrated, tmp_path):
    d = _case_dir(calibrated[2], tmp_path, "t")
    np.testing.assert_array_equal(_run_test_mode(calibrated[3], d, calibrated[1]), calibrated[4])


def test_message_names_the_entry(calibrated, tmp_path):
    d = _case_dir(calibrated[2], tmp_path, "t")
    _edit_info(d, lambda i: i["output"].update({"Tiny::relu#2": [[BW, 2.5]]}))
    with pytest.raises(QuantizerError, match=r"'output' entry 'Tiny::relu#2': fix_pos must be an integer"):
        _run_test_mode(calibrated[3], d, calibrated[1])
    _edit_corr(d, _one(lambda c: np.where(np.arange(c.size) == 2, np.nan, c).astype(np.float32)))
    _edit_info(d, lambda i: i["output"].update({"Tiny::relu#2": [[BW, 2]]}))
    with pytest.raises(QuantizerError, match=r"bias_corr.npz: entry 'Tiny::c1.bias': element 2 is nan"):
        _run_test_mode(calibrated[3], d, calibrated[1])


# ---- seeded mutations ---------------------------------------------------------------------------------
_VALUES = [None, True, False, 0, 1, -1, 2, 3, 4, 7, 8, 16, 17, 33, 64, 2 ** 31, -(2 ** 40), 0.5, 2.0, -3.25, 1e308,
           "", "8", "x", [], [[]], [1], [[4]], [[4, 1]], [[4, 1, 2]], {}, {"a": 1}]


def _valid_format(v) -> bool:
    return (isinstance(v, list) and len(v) == 1 and isinstance(v[0], list) and len(v[0]) == 2
            and all(type(e) is int for e in v[0]) and v[0][0] == BW and -128 <= v[0][1] <= 12)


def _mutate_info(rng: random.Random, info: dict) -> bool:
    """Mutate `info` in place; returns whether the result must be rejected."""
    kind = rng.randrange(9)
    sec = rng.choice(["param", "output", "input"])
    if sec not in info:
        return True   # removed by an earlier mutation: a required section is missing
    entries = info[sec]
    if not isinstance(entries, dict) or not entries:
        info[sec] = rng.choice([None, [], 3, "s"])
        return True
    name = rng.choice(sorted(entries))
    if kind == 0 and not _valid_format(entries[name]):
        kind = 1
    if kind == 0:   # a fix_pos moved within the valid range: still a valid file
        bw, fp = entries[name][0]
        entries[name] = [[bw, max(-8, min(fp + rng.choice([-2, -1, 1, 2]), 3))]]
        return False
    if kind == 1:
        entries[name] = copy.deepcopy(rng.choice(_VALUES))
        return not _valid_format(entries[name])
    if kind == 2:
        entries[name] = [[rng.choice(_VALUES), entries[name][0][1]]]
        return not _valid_format(entries[name])
    if kind == 3:
        entries[name] = [[BW, rng.choice(_VALUES)]]
        return not _valid_format(entries[name])
    if kind == 4:
        del entries[name]
        return True
    if kind == 5:
        entries[name + rng.choice(["x", "#9", ".weight", " "])] = entries[name]
        return True
    if kind == 6:
        info[sec] = rng.choice([None, [], 3, "s", {}])
        return True
    if kind == 7:
        key = rng.choice(["bias_corrected", "graph_md5", "fast_finetuned", "version", "fixflow_graph_options"])
        v = copy.deepcopy(rng.choice(_VALUES))
        info[key] = v
        # valid values: bias_corrected true/false (false: the corrections are not applied), any version string,
        # no graph options, fast_finetuned false
        return not ((key == "bias_corrected" and isinstance(v, bool)) or (key == "fast_finetuned" and v is False)
                    or (key == "version" and isinstance(v, str)) or (key == "fixflow_graph_options" and v == {}))
    key = rng.choice(sorted(info))
    info.pop(key)
    return key not in ("version", "fast_finetuned", "fixflow_graph_options")


def _mutate_corr(rng: random.Random, arrays: dict) -> tuple[dict, bool]:
    key = rng.choice(sorted(arrays))
    c = arrays[key]
    kind = rng.randrange(6)
    if kind == 0:   # a small change: still a correction calibration could have written
        arrays[key] = (c * np.float32(rng.choice([0.5, 0.9, 1.1]))).astype(np.float32)
        return arrays, False
    if kind == 1:
        bad = np.asarray(c, np.float32).copy()
        bad[rng.randrange(bad.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e30, 3e38])
        arrays[key] = bad
    elif kind == 2:
        arrays[key] = rng.choice([c[:-1], np.concatenate([c, c]), c.reshape(1, -1), np.float32(0), c[:0]])
    elif kind == 3:
        arrays[key] = c.astype(rng.choice([np.int8, np.int64, np.bool_, np.complex64]))
    elif kind == 4:
        arrays[key + rng.choice(["x", "#2"])] = arrays.pop(key)
    else:
        arrays.pop(key)
        arrays[rng.choice(["Tiny::fc.weight", "Tiny::x", "nothing"])] = c
    return arrays, True


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(3)
    if kind == 0:
        return bytes(b[:rng.randrange(len(b))])
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    i = rng.randrange(len(b))
    return bytes(b[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + b[i:])


def _fuzz(calibrated, tmp_path: Path, seed: int, n: int) -> dict[str, int]:
    calib = calibrated[2]
    rng = random.Random(seed)
    stats = {"cases": 0, "rejected": 0, "accepted": 0}
    for i in range(n):
        d = _case_dir(calib, tmp_path, f"c{i}")
        target = rng.random()
        if target < 0.55:
            info = json.loads((d / "quant_info.json").read_text())
            must = _mutate_info(rng, info)
            (d / "quant_info.json").write_text(json.dumps(info))
            note = json.dumps(info)
        elif target < 0.85:
            with np.load(d / "bias_corr.npz") as z:
                arrays = {k: z[k] for k in z.files}
            arrays, must = _mutate_corr(rng, arrays)
            note = repr({k: (v.dtype, v.shape, v.ravel()[:4]) for k, v in arrays.items()})
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            (d / "bias_corr.npz").write_bytes(buf.getvalue())
        else:
            name = rng.choice(["quant_info.json", "bias_corr.npz"])
            data = (d / name).read_bytes()
            new = _mutate_bytes(rng, data)
            (d / name).write_bytes(new)
            must = None   # a byte edit may leave a valid file (a digit changed within range)
            note = f"{name}: {new[:200]!r}"
            if name == "bias_corr.npz":
                try:
                    with zipfile.ZipFile(io.BytesIO(new)) as z:
                        z.testzip()
                except Exception:  # noqa: BLE001
                    must = True
        _, x, _, base, ref = calibrated
        stats["cases"] += 1
        try:
            y = _run_test_mode(base, d, x)
        except FixflowError as e:
            assert "\n" not in e.message, f"case {i} (seed {seed}): multi-line message {e.message!r}"
            stats["rejected"] += 1
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"case {i} (seed {seed}): {type(e).__name__}: {e}") from e
        else:
            assert not must, f"case {i} (seed {seed}): a must-reject edit was accepted: {note}"
            assert y.shape == ref.shape
            stats["accepted"] += 1
        shutil.rmtree(d)
    return stats


def test_quant_files_fuzz(calibrated, tmp_path):
    stats = _fuzz(calibrated, tmp_path, SEED, 300)
    print(f"\nquant-files fuzz seed {SEED}: {stats}")
    assert stats["rejected"] > 150 and stats["accepted"] > 10


@pytest.mark.slow
def test_quant_files_fuzz_sweep(calibrated, tmp_path):
    stats = _fuzz(calibrated, tmp_path, SEED + 1, 3000)
    print(f"\nquant-files fuzz sweep seed {SEED + 1}: {stats}")
