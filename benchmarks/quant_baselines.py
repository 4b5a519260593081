"""Post-training int8 quantization of the same float model with fixflow, torch.ao and onnxruntime.

Every ``quantize_*`` function takes the float torch model (eval mode) and the same calibration
batches (NCHW float32 numpy arrays) and returns an ``Int8Model``: a runnable quantized model
(``predict(x) -> logits``, both numpy) plus a description of its numerics. The work these
functions do -- calibration and conversion, from the float model to a model ready to run -- is
what the benchmark times; evaluation is separate (``quality``).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class Int8Model:
    """A quantized model ready to run: ``predict`` maps NCHW float32 inputs to float logits."""

    predict: Predict
    scheme: str
    artifact: Any = None  # the tool's own quantized model object / file, for inspection


@dataclass(frozen=True)
class Quality:
    """Float vs quantized quality on a labelled set (accuracies as fractions, SQNR in dB)."""

    float_top1: float
    int8_top1: float
    agreement: float
    sqnr_db: float

    def as_dict(self) -> dict[str, float]:
        return {"float_top1": self.float_top1, "int8_top1": self.int8_top1, "agreement": self.agreement,
                "sqnr_db": self.sqnr_db}


def calibration_batches(x_train: np.ndarray, n_batches: int = 10, batch_size: int = 32) -> list[np.ndarray]:
    """The first ``n_batches`` consecutive batches of ``x_train`` (as the accuracy tests calibrate)."""
    return [np.ascontiguousarray(x_train[i:i + batch_size]) for i in range(0, n_batches * batch_size, batch_size)]


def float_logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits of the float torch model."""
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def quality(y_float: np.ndarray, y_int8: np.ndarray, labels: np.ndarray) -> Quality:
    """Top-1 of both, top-1 agreement, and logit SQNR = 10 log10(E[yf^2] / E[(yf - yq)^2])."""
    y_float, y_int8 = np.asarray(y_float, np.float64), np.asarray(y_int8, np.float64)
    pf, pq = y_float.argmax(1), y_int8.argmax(1)
    noise = float(((y_float - y_int8) ** 2).mean())
    sqnr = float("inf") if noise == 0 else float(10 * np.log10((y_float ** 2).mean() / noise))
    return Quality(float((pf == labels).mean()), float((pq == labels).mean()), float((pf == pq).mean()), sqnr)


def quantize_fixflow(model: torch.nn.Module, calib: Sequence[np.ndarray], workdir: str | Path) -> Int8Model:
    """fixflow W8A8 through the ``Quantizer`` API (default config: CLE + bias correction), calib then
    test mode; ``predict`` runs the fix-dialect simulation (bit-exact with integer execution)."""
    from fixflow.quantizer import Quantizer

    example = (torch.from_numpy(calib[0][:1]),)
    q = Quantizer(model, example, mode="calib", output_dir=workdir, log=None, progress=False)
    for xb in calib:
        q.quant_model(xb)
    q.export_quant_config()
    qt = Quantizer(model, example, mode="test", output_dir=workdir, log=None, progress=False)
    qm = qt.quant_model
    return Int8Model(lambda x: np.asarray(qm(x)), "W8A8 symmetric, power-of-two per-tensor scales", qm)


def quantize_torch_ao(model: torch.nn.Module, calib: Sequence[np.ndarray], backend: str = "x86") -> Int8Model:
    """torch.ao FX graph mode post-training static int8 with ``get_default_qconfig_mapping(backend)``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    prev = torch.backends.quantized.engine
    torch.backends.quantized.engine = backend
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao deprecation / reduce_range notices
            m = copy.deepcopy(model).eval()
            example = (torch.from_numpy(calib[0][:1]),)
            prepared = prepare_fx(m, get_default_qconfig_mapping(backend), example)
            with torch.no_grad():
                for xb in calib:
                    prepared(torch.from_numpy(xb))
            converted = convert_fx(prepared)
    finally:
        torch.backends.quantized.engine = prev

    def predict(x: np.ndarray) -> np.ndarray:
        old = torch.backends.quantized.engine
        torch.backends.quantized.engine = backend
        try:
            with torch.no_grad():
                return converted(torch.from_numpy(x)).numpy()
        finally:
            torch.backends.quantized.engine = old

    return Int8Model(predict, f"{backend}: act quint8 affine (histogram, reduce_range), weights qint8 "
                              "per-channel symmetric, float scales", converted)


def export_onnx(model: torch.nn.Module, example: np.ndarray, path: str | Path) -> Path:
    """TorchScript-based ONNX export (opset 17, dynamic batch, input ``x``, output ``y``)."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(example[:1]),), str(path), opset_version=17, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return path


def ort_session(path: str | Path) -> Any:
    """An onnxruntime CPU inference session for the model file ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def quantize_onnxruntime(model: torch.nn.Module, calib: Sequence[np.ndarray], workdir: str | Path,
                         per_channel: bool = False) -> Int8Model:
    """Export to ONNX, ``quant_pre_process``, then ``quantize_static`` (QDQ, MinMax calibration over
    ``calib``, int8 activations and weights); ``predict`` runs onnxruntime on CPU."""
    import logging

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"x": xb} for xb in calib])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tag = "pc" if per_channel else "pt"
    f32 = export_onnx(model, calib[0], workdir / f"float_{tag}.onnx")
    pre = workdir / f"float_{tag}_pre.onnx"
    q8 = workdir / f"int8_{tag}.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs advice at WARNING on the root logger
    try:
        quant_pre_process(str(f32), str(pre))
        quantize_static(str(pre), str(q8), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)
    sess = ort_session(q8)
    scheme = ("act int8 affine (MinMax), weights int8 symmetric "
              f"{'per-channel' if per_channel else 'per-tensor'}, float scales")
    return Int8Model(lambda x: sess.run(None, {"x": x})[0], scheme, q8)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of ``rows`` (keys: model, tool, seconds, float_top1, int8_top1, agreement, sqnr_db)."""
    lines = ["| model | tool | calib+convert | float top-1 | int8 top-1 | top-1 agreement | logit SQNR |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['tool']} | {r['seconds']:.2f} s | {100 * r['float_top1']:.2f} % | "
                     f"{100 * r['int8_top1']:.2f} % | {100 * r['agreement']:.2f} % | {r['sqnr_db']:.1f} dB |")
    return "\n".join(lines)


# ---- quantization-aware training (issue 13): fixflow's QatProcessor and torch.ao's QAT on the same data
def train_loop(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch_size: int = 64,
               seed: int = 0) -> None:
    """Adam with a cosine-annealed learning rate, seeded shuffles, cross-entropy; the same for every tool."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(x) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    model.train()
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


def qat_fixflow(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, workdir: str | Path, weight_bits: int = 4,
                epochs: int = 3, lr: float = 1e-3) -> Int8Model:
    """fixflow QAT (TQT thresholds) at W{weight_bits}A8, then the deployed model's test mode (what the DPU
    computes); ``artifact`` is the QatProcessor."""
    from fixflow.quantizer.qat import QatProcessor

    torch.manual_seed(0)
    qat = QatProcessor(model, (torch.from_numpy(x[:1]),), log=None,
                       config={"tensor_quantize_config": {"weights": {"bit_width": weight_bits}}})
    qm = qat.trainable_model()
    train_loop(qm, x, y, epochs, lr)
    qat.to_deployable(qm, workdir)
    qm_test = qat.quantizer().quant_model
    return Int8Model(lambda xs: np.asarray(qm_test(xs)), f"W{weight_bits}A8 power-of-two per-tensor, TQT thresholds",
                     qat)


def qat_torch_ao(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, weight_bits: int = 8, epochs: int = 3,
                 lr: float = 1e-3, backend: str = "x86") -> Int8Model:
    """torch.ao FX QAT: ``get_default_qat_qconfig_mapping(backend)`` at 8 bits (converted to int8 kernels); at
    fewer weight bits, per-tensor symmetric fake-quantized weights in [-2^(b-1), 2^(b-1) - 1] with the default
    8-bit activations, evaluated as the trained fake-quant model (torch.ao has no int4 kernels)."""
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, QConfig, QConfigMapping
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    torch.manual_seed(0)
    prev = torch.backends.quantized.engine
    torch.backends.quantized.engine = backend
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mapping = get_default_qat_qconfig_mapping(backend)
            if weight_bits != 8:
                act = mapping.global_qconfig.activation
                wq = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=-(2 ** (weight_bits - 1)),
                                            quant_max=2 ** (weight_bits - 1) - 1, dtype=torch.qint8,
                                            qscheme=torch.per_tensor_symmetric)
                mapping = QConfigMapping().set_global(QConfig(activation=act, weight=wq))
            m = copy.deepcopy(model).train()
            prepared = prepare_qat_fx(m, mapping, (torch.from_numpy(x[:1]),))
            train_loop(prepared, x, y, epochs, lr)
            final = convert_fx(copy.deepcopy(prepared).eval()) if weight_bits == 8 else prepared.eval()
    finally:
        torch.backends.quantized.engine = prev

    def predict(xs: np.ndarray) -> np.ndarray:
        old = torch.backends.quantized.engine
        torch.backends.quantized.engine = backend
        try:
            with torch.no_grad():
                return final(torch.from_numpy(xs)).numpy()
        finally:
            torch.backends.quantized.engine = old

    scheme = (f"{backend} QAT: act quint8 affine, weights qint8 per-channel, converted" if weight_bits == 8 else
              f"{backend} QAT: act quint8 affine, weights {weight_bits}-bit per-tensor symmetric (fake-quant)")
    return Int8Model(predict, scheme, final)
