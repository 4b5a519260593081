"""QAT (fixflow.quantizer.qat): the TQT quantizer's forward and gradients, training a zoo model, the
deployed model through the Quantizer's export, fixflow-compile and the runtime, and the bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _lib.small_quantizer import Net, data  # noqa: E402
from fixflow.dialects.fix.numerics import fake_quantize  # noqa: E402
from fixflow.quantizer.qat import QatError, QatProcessor, TQTQuantizer  # noqa: E402


# ---- the TQT quantizer
@pytest.mark.parametrize("mode", ["half_up", "std_round"])
@pytest.mark.parametrize("bw", [4, 8])
def test_tqt_forward_is_fixflows_fake_quantize(mode, bw):
    rng = np.random.default_rng(bw)
    x = (rng.standard_normal(4000) * 3).astype(np.float32)
    x[:8] = [2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 100.0, -100.0]   # ties and saturation
    q = TQTQuantizer(bw, mode, "t")
    q.init_from(torch.from_numpy(x))
    fp = q.fix_pos()
    with torch.no_grad():
        q.log2_t.fill_(bw - 1 - 1)       # fix_pos 1: steps of 0.5, the ties above are real ties
    got = q(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_array_equal(got, fake_quantize(x, bw, 1, mode))
    assert isinstance(fp, int)


def test_tqt_gradients():
    """x: straight through inside the range, 0 outside; log2_t: ln2 * s * (round(x/s) - x/s) inside, ln2 * s *
    (qmin or qmax) outside (Jain et al. 2019, eq. 6-7), summed over the tensor."""
    bw = 4
    q = TQTQuantizer(bw, "half_up", "t")
    with torch.no_grad():
        q.log2_t.fill_(0.3)                  # ceil -> 1: scale 2^(1 - 3) = 0.25, range [-2, 1.75]
        q.initialized.fill_(True)
    x = torch.tensor([0.1, -0.37, 1.6, 3.0, -5.0, 0.125], requires_grad=True)
    q(x).sum().backward()
    s = 0.25
    xs = x.detach().numpy() / s
    inside = (np.floor(xs + 0.5) >= -8) & (np.floor(xs + 0.5) <= 7)
    np.testing.assert_array_equal(x.grad.numpy(), inside.astype(np.float32))
    per = np.where(inside, np.floor(xs + 0.5) - xs, np.where(xs < 0, -8, 7))
    assert math.isclose(float(q.log2_t.grad), math.log(2) * s * per.sum(), rel_tol=1e-5)


# ---- training and deployment
def _train(qm, x, y, steps, lr=1e-3):
    opt = torch.optim.Adam(qm.parameters(), lr=lr)
    qm.train()
    for i in range(steps):
        xb, yb = x[64 * i:64 * i + 64], y[64 * i:64 * i + 64]
        loss = torch.nn.functional.cross_entropy(qm(torch.from_numpy(xb)), torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    qm.eval()


@pytest.fixture(scope="module")
def digits_qat(tmp_path_factory):
    from fixflow import zoo
    model = zoo.get_model("digits_cnn")
    x, y = (np.asarray(a) for a in zoo.load_data("digits_cnn", "train"))
    out = tmp_path_factory.mktemp("qat")
    qat = QatProcessor(model, (torch.from_numpy(x[:1]),), config={"tensor_quantize_config": {"weights": {"bit_width": 4}}},
                       log=None)
    qm = qat.trainable_model()
    _train(qm, x, y, 4)
    deployable = qat.to_deployable(qm, out)
    return qat, qm, deployable, out


def test_qat_exports_ptq_files_and_test_mode_agrees(digits_qat):
    from fixflow import zoo
    qat, qm, deployable, out = digits_qat
    import json
    info = json.loads((out / "quant_info.json").read_text())
    assert info["param"]["DigitsCNN::features.0.0.weight"][0][0] == 4
    assert info["fixflow_graph_options"] == {"include_cle": False, "convert_relu6_to_relu": False}
    # the quant_info.json holds the trained fix positions
    fps = qm.fix_positions()
    trained = {qat._names[v.op]: fp for v, fp in fps["points"].items()}
    legal = sum(info["output"][f"DigitsCNN::{n}"][0][1] == fp for n, fp in trained.items())
    assert legal >= len(trained) - 1      # legalize-fix may move one (it says so)
    # the trained fake-quant model and the deployed test mode agree on (almost) every image
    xt, yt = (np.asarray(a) for a in zoo.load_data("digits_cnn", "test"))
    with torch.no_grad():
        p_qat = qm(torch.from_numpy(xt)).argmax(1).numpy()
    q = qat.quantizer()
    p_dep = q.quant_model(torch.from_numpy(xt)).numpy().argmax(1)
    assert (p_qat == p_dep).mean() > 0.98
    assert (p_dep == yt).mean() > 0.95
    # the deployable model is the user's class, BN kept as an identity
    assert type(deployable).__name__ == "DigitsCNN"


def test_qat_xmodel_compiles_and_runs_as_test_mode(digits_qat, tmp_path):
    from fixflow import zoo
    from fixflow.runtime import GraphRunner
    from fixflow.tools.compile import main as compile_main
    qat, _, _, out = digits_qat
    path = qat.export_xmodel(out)
    assert path.name == "DigitsCNN_int.xmodel"
    assert compile_main(["-x", str(path), "-a", "DPUCZDX8G_ISA1_B4096", "-o", str(tmp_path / "c"),
                         "--no-progress"]) == 0
    xt, _ = zoo.load_data("digits_cnn", "test")
    xt = np.asarray(xt)[:32]
    g = GraphRunner.from_xmodel(tmp_path / "c" / "DigitsCNN.xmodel", mode="fast")
    (got,) = g.run([xt])
    want = qat.quantizer().quant_model(torch.from_numpy(xt)).numpy()
    np.testing.assert_array_equal(got, want)


# ---- bad input
def test_export_before_training_is_refused(tmp_path):
    qat = QatProcessor(Net().eval(), (data(1),), log=None)
    with pytest.raises(QatError, match=r"export_xmodel\(\): the QAT model was exported before training"):
        qat.export_xmodel(tmp_path)
    qm = qat.trainable_model()
    with pytest.raises(QatError, match=r"the QAT model was exported before training: trainable_model\(\) was never "
                                       r"run in training mode"):
        qat.to_deployable(qm, tmp_path)
    qm.train()
    qm(data(8))                       # a forward in training mode, but no optimizer step
    with pytest.raises(QatError, match="no parameter changed"):
        qat.to_deployable(qm, tmp_path)
    with pytest.raises(QatError, match="pass the module trainable_model"):
        qat.to_deployable(Net(), tmp_path)


def test_nan_loss_is_one_clear_message():
    qat = QatProcessor(Net().eval(), (data(1),), log=None)
    qm = qat.trainable_model()
    qm.train()
    opt = torch.optim.SGD(qm.parameters(), lr=0.1)
    loss = qm(data(8)).sum() * float("nan")
    opt.zero_grad()
    loss.backward()
    opt.step()
    with pytest.raises(QatError, match=r"holds NaN or inf values after 1 training steps \(the loss or its gradients "
                                       r"were not finite"):
        qm(data(8))


def test_not_a_torch_module():
    with pytest.raises(QatError, match="needs a torch.nn.Module"):
        QatProcessor(object(), (data(1),), log=None)
