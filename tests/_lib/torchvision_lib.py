"""torchvision's classification architectures for the frontend and quantizer coverage tests.

torchvision is installed without its dependencies (`pip install --no-deps torchvision==0.29.1`, see
scripts/setup.sh) so that it cannot replace the local CPU build of PyTorch. Its compiled operators
(`torchvision/_C_stable.so`) are built against a different PyTorch and do not load here; torchvision then
runs without them, except that `torchvision/_meta_registrations.py` registers fake (meta) kernels for
`torchvision::nms` and `torchvision::qnms` unconditionally, which fails when those operators were never
defined. `load_torchvision()` defines the two schemas (no kernel: calling them raises "no kernel
registered") before the import when the compiled library did not register them. The classification
models are pure Python and call neither.

`build(name)` makes a model with seeded random weights in eval mode; `input_shape(name)` is the input the
coverage tests use: the smallest input size at which every stage of the architecture still sees a
feature map of at least 2x2 (most CNNs: 64x64, so the run is about 12x cheaper than at 224x224) and
224x224 where the architecture fixes the size (MaxViT's 7x7 partitions). ViTs are built with
`image_size=64` (56 for ViT-H/14, a multiple of its patch; their positional embedding follows the image size). `FIXFLOW_TV_SIZE=224` runs every
model at torchvision's default 224x224 instead.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

_LIB: Any = None  # the torch.library fragment holding the stub schemas (kept alive for the process)
_STUB_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
                 "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

#: architectures whose input size is fixed by the design (MaxViT: 7x7 partitions at every stage)
_FIXED_224 = frozenset({"maxvit_t"})
#: smallest sizes where smaller inputs break an architecture (Inception v3: 75x75 minimum)
_MIN_SIZE = {"inception_v3": 96, "vit_h_14": 56}  # ViT-H/14: a multiple of its 14x14 patches
_SMALL = 64


def load_torchvision() -> Any:
    """Import torchvision, stubbing its compiled operators' schemas if its import fails for want of them.

    Raises ImportError when torchvision (or Pillow, which it imports) is not installed."""
    global _LIB
    import sys

    import torch

    try:
        import torchvision
    except RuntimeError as e:
        if "torchvision::" not in str(e) or _LIB is not None:
            raise
        for mod in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[mod]  # the half-imported package; importing it again starts over
        _LIB = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _STUB_SCHEMAS:
            _LIB.define(schema)
        import torchvision
    import torchvision.models  # noqa: F401
    return torchvision


def architectures() -> list[str]:
    """Every classification architecture of `torchvision.models` (80 in torchvision 0.29)."""
    tv = load_torchvision()
    return list(tv.models.list_models(module=tv.models))


def is_transformer(name: str) -> bool:
    """ViT, Swin and MaxViT: attention models (the quantization bar is for the convolutional ones)."""
    return name.startswith(("vit_", "swin_", "maxvit"))


def input_size(name: str) -> int:
    """The input height = width the coverage tests use for `name` (see the module docstring)."""
    if os.environ.get("FIXFLOW_TV_SIZE"):
        return int(os.environ["FIXFLOW_TV_SIZE"])
    if name in _FIXED_224:
        return 224
    return _MIN_SIZE.get(name, _SMALL)


def input_shape(name: str, batch: int = 1) -> tuple[int, int, int, int]:
    s = input_size(name)
    return (batch, 3, s, s)


def quant_input_shape(name: str, batch: int = 1) -> tuple[int, int, int, int]:
    """The input the quantization runs use: `input_shape` (VGG's adaptive average pool to 7x7, uneven on its
    2x2 map at 64x64, is a 1x1 conv in fixed point: VGG no longer needs 224x224)."""
    return input_shape(name, batch)


def build(name: str, seed: int = 0) -> Any:
    """`name` with seeded random weights, in eval mode (Inception v3 and GoogLeNet without aux heads)."""
    import torch

    tv = load_torchvision()
    kwargs: dict[str, Any] = {"weights": None}
    if name in ("inception_v3", "googlenet"):
        kwargs.update(aux_logits=False, init_weights=True)
    if name.startswith("vit_"):
        kwargs["image_size"] = input_size(name)
    torch.manual_seed(seed)
    model = tv.models.get_model(name, **kwargs)
    _randomize_norm_stats(model, seed)
    return model.eval()


def _randomize_norm_stats(model: Any, seed: int) -> None:
    """Make every parameter and BatchNorm statistic informative: BatchNorm running statistics and affine
    parameters random (a fresh model has mean 0, var 1, weight 1, bias 0, which would hide a wrong folding),
    and any parameter its architecture initializes to one constant (ViT's zero classifier head, which makes
    every output 0, ConvNeXt's 1e-6 layer scales, norm weights of 1 and biases of 0) random as well."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            if flat.numel() == 0 or not bool((flat == flat[0]).all()):
                continue
            c = float(flat[0])
            if c != 0.0 and abs(c) >= 1e-3:           # e.g. a norm's weight of 1: around it
                p.copy_(c * (0.75 + 0.5 * torch.rand(p.shape, generator=g)))
            elif p.dim() >= 2:                          # a zero / tiny weight: fan-in scaled normal
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            else:                                       # a bias or a layer scale
                p.copy_(0.1 * torch.randn(p.shape, generator=g) + (0.5 if "scale" in name else 0.0))


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want| (the error relative to the output's scale)."""
    scale = float(np.max(np.abs(want))) or 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale


def needs_torchvision() -> Any:
    """A `pytestmark` that skips a module when torchvision (or Pillow) is missing."""
    import pytest
    try:
        have = bool(architectures())
    except ImportError:  # torchvision or Pillow missing: scripts/setup.sh installs them
        have = False
    return pytest.mark.skipif(not have, reason="torchvision is not installed (scripts/setup.sh installs it)")
