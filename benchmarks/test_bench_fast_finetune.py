"""Fast finetuning (AdaQuant) bars of issue 13, with torch.ao's post-training quantization on the same models and
data in the same run:

* W8A8 + fast finetune on tiny_mobilenet: top-1 agreement with float >= 99.7 % (digits test split, 359 images)
  and logit SQNR >= plain calibration + 2 dB;
* W4A8 (4-bit weights) + fast finetune: within 1.0 point of float top-1 on digits_cnn and tiny_mobilenet;
* ResNet-18 (seeded weights), 64 images at 224x224: calibration + fast finetune under 5 minutes and 2 GB peak
  memory (the whole process's peak RSS, measured in a child process).

Calibration and finetune data: the first 320 digits train images, given to calibration as one batch (so the
fix positions are the "diffs" choice on all of them); the W8A8 tiny_mobilenet rows are also run with the same
images as 10 batches of 32, where vai_q's modal per-batch vote puts the logits at [8, 3] and caps the SQNR near
29.1 dB (docs/benchmarks.md, "Fast finetuning"). ResNet-18: 64 zoo sample inputs, 2 batches of 32. Quality is
measured with the test-mode Quantizer (the fix-dialect simulation, bit-exact with the DPU). Run:

    python -m pytest benchmarks/test_bench_fast_finetune.py --benchmark-only -s -p no:cacheprovider
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import quant_baselines as qb

from fixflow import zoo
from fixflow.quantizer import Quantizer

W4A8 = {"tensor_quantize_config": {"weights": {"bit_width": 4}}}
ROWS: list[dict] = []


def _fixflow(model, calib, workdir, config=None, ft=True, epochs=10, batch_size=32, rescale=True):
    """Calib (+ fast finetune) and test mode; returns (predict, seconds of calib+finetune+export, report)."""
    ex = (torch.from_numpy(calib[0][:1]),)
    q = Quantizer(model, ex, mode="calib", output_dir=workdir, config=config, log=None, progress=False)

    def evaluate(batches):
        for xb in batches:
            q.quant_model(torch.from_numpy(xb))

    t = time.perf_counter()
    if ft:
        rep = q.fast_finetune(evaluate, (calib,), epochs=epochs, batch_size=batch_size, rescale=rescale)
    else:
        rep = evaluate(calib)
    q.export_quant_config()
    dt = time.perf_counter() - t
    del q
    qt = Quantizer(model, ex, mode="test", output_dir=workdir, config=config, log=None, progress=False)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # calibration + finetune + export
    return (lambda x: np.concatenate([np.asarray(qt.quant_model(x[i:i + 8])) for i in range(0, len(x), 8)])), dt, \
        (rep, peak_kib)


def _row(model_name, tool, q: qb.Quality, seconds):
    ROWS.append({"model": model_name, "tool": tool, "time": f"{seconds:.1f} s",
                 "float top-1": f"{100 * q.float_top1:.2f} %", "quant top-1": f"{100 * q.int8_top1:.2f} %",
                 "top-1 agreement": f"{100 * q.agreement:.2f} %", "logit SQNR": f"{q.sqnr_db:.1f} dB"})


@pytest.fixture(scope="module", autouse=True)
def table(request):
    yield
    if ROWS:
        request.config.fixflow_bench_summaries.append(
            "Fast finetuning (AdaQuant) vs plain calibration vs torch.ao PTQ:\n" + _table(ROWS))


def _table(rows: list[dict]) -> str:
    keys = ["model", "tool", "time", "float top-1", "quant top-1", "top-1 agreement", "logit SQNR"]
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
                      *("| " + " | ".join(r[k] for k in keys) + " |" for r in rows)])


def _digits(name, batches=1):
    """The first 320 train images in `batches` batches, and the test split."""
    xtr, _ = zoo.load_data(name, "train")
    xte, yte = zoo.load_data(name, "test")
    return qb.calibration_batches(xtr, batches, 320 // batches), xte, yte


def test_bench_w8a8_tiny_mobilenet(benchmark, tmp_path):
    model = zoo.get_model("tiny_mobilenet")
    calib, xte, yte = _digits("tiny_mobilenet")
    yf = qb.float_logits(model, xte)
    plain, t_plain, _ = _fixflow(model, calib, tmp_path / "plain", ft=False)
    qp = qb.quality(yf, plain(xte), yte)
    _row("tiny_mobilenet", "fixflow W8A8 calib", qp, t_plain)
    (ft, t_ft, (rep, _)) = benchmark.pedantic(lambda: _fixflow(model, calib, tmp_path / "ft"), rounds=1,
                                              iterations=1)
    qf = qb.quality(yf, ft(xte), yte)
    _row("tiny_mobilenet", "fixflow W8A8 calib + fast finetune", qf, t_ft)
    no_rescale, t_nr, _ = _fixflow(model, calib, tmp_path / "ft_nr", rescale=False)
    _row("tiny_mobilenet", "fixflow W8A8 calib + fast finetune, rescale=False", qb.quality(yf, no_rescale(xte), yte),
         t_nr)
    calib10, _, _ = _digits("tiny_mobilenet", 10)
    for tag, ft_on in (("10 x 32 calib", False), ("10 x 32 calib + fast finetune", True)):
        pred, t10, _ = _fixflow(model, calib10, tmp_path / tag.replace(" ", "_"), ft=ft_on)
        _row("tiny_mobilenet", f"fixflow W8A8 {tag}", qb.quality(yf, pred(xte), yte), t10)
    t = time.perf_counter()
    ao = qb.quantize_torch_ao(model, calib)
    _row("tiny_mobilenet", "torch.ao x86 PTQ (int8)", qb.quality(yf, ao.predict(xte), yte), time.perf_counter() - t)
    benchmark.extra_info.update({"plain": qp.as_dict(), "finetuned": qf.as_dict(),
                                 "peak_frontier_mib": rep.peak_frontier_bytes / 2**20})
    assert qf.agreement >= 0.997
    assert qf.sqnr_db >= qp.sqnr_db + 2.0


@pytest.mark.parametrize("name", ["digits_cnn", "tiny_mobilenet"])
def test_bench_w4a8(benchmark, tmp_path, name):
    model = zoo.get_model(name)
    calib, xte, yte = _digits(name)
    yf = qb.float_logits(model, xte)
    plain, t_plain, _ = _fixflow(model, calib, tmp_path / "plain", config=W4A8, ft=False)
    qp = qb.quality(yf, plain(xte), yte)
    _row(name, "fixflow W4A8 calib", qp, t_plain)
    ft, t_ft, _ = benchmark.pedantic(lambda: _fixflow(model, calib, tmp_path / "ft", config=W4A8), rounds=1,
                                     iterations=1)
    qf = qb.quality(yf, ft(xte), yte)
    _row(name, "fixflow W4A8 calib + fast finetune", qf, t_ft)
    t = time.perf_counter()
    ao = qb.quantize_torch_ao(model, calib)
    _row(name, "torch.ao x86 PTQ (int8)", qb.quality(yf, ao.predict(xte), yte), time.perf_counter() - t)
    benchmark.extra_info.update({"plain": qp.as_dict(), "finetuned": qf.as_dict()})
    assert qf.int8_top1 >= qf.float_top1 - 0.010


def _resnet18_child(out: str) -> None:
    """In a fresh process: calibrate + fast finetune ResNet-18 on 64 images; writes seconds and the SQNRs."""
    model = zoo.get_model("resnet18")
    x = zoo.sample_inputs("resnet18", 64)
    calib = [x[i:i + 32] for i in range(0, 64, 32)]
    workdir = Path(out).parent / "rn18"
    t = time.perf_counter()
    predict, _, (rep, peak_kib) = _fixflow(model, calib, workdir, epochs=2, batch_size=16)
    dt = time.perf_counter() - t
    yf = qb.float_logits(model, x)
    q = qb.quality(yf, predict(x), yf.argmax(1))
    Path(out).write_text(json.dumps({"seconds": dt, "quality": q.as_dict(), "finetune_peak_rss_kib": peak_kib,
                                     "peak_frontier_mib": rep.peak_frontier_bytes / 2**20,
                                     "layers": len(rep.layers)}))


def test_bench_resnet18_64_images(benchmark, tmp_path):
    out = tmp_path / "r.json"

    def run():
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([sys.executable, __file__, str(out)], check=True)
        return before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    before, peak_kib = benchmark.pedantic(run, rounds=1, iterations=1)
    r = json.loads(out.read_text())
    assert peak_kib > before, "the child's peak RSS was not measured (an earlier child was bigger)"
    peak_gib = r["finetune_peak_rss_kib"] / 2**20      # the process's peak up to the end of the finetune
    benchmark.extra_info.update({"seconds": r["seconds"], "peak_rss_gib": peak_gib,
                                 "peak_rss_gib_with_evaluation": peak_kib / 2**20, **r})
    model = zoo.get_model("resnet18")
    x = zoo.sample_inputs("resnet18", 64)
    yf = qb.float_logits(model, x)
    q = qb.Quality(**{k: v for k, v in r["quality"].items()})
    _row("resnet18 (seeded, 64 imgs)", f"fixflow W8A8 calib + fast finetune (2 epochs, batch 16), peak RSS {peak_gib:.2f} GiB", q,
         r["seconds"])
    t = time.perf_counter()
    ao = qb.quantize_torch_ao(model, [x[:32], x[32:]])
    _row("resnet18 (seeded, 64 imgs)", "torch.ao x86 PTQ (int8)", qb.quality(yf, ao.predict(x), yf.argmax(1)),
         time.perf_counter() - t)
    assert r["seconds"] < 300
    assert peak_gib < 2.0


if __name__ == "__main__":
    _resnet18_child(sys.argv[1])
