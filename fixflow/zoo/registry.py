"""The model registry: names, descriptions, shapes, GOPs, accuracies and constructors.

Importing this module does not import torch; building a model or counting its GOPs does.
GOPs are computed (not copied): forward hooks count the MACs of every Conv2d and Linear at the
registered input shape (batch 1), 2 ops per MAC. Float accuracies of the trained digits models
are the measured test-split accuracies recorded by ``fixflow.zoo.train.bundle`` in
``weights/manifest.json``.
"""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixflow.zoo.errors import UnknownModelError, ZooError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    ``constructor`` is ``"module:callable"``; ``weights`` a bundled file name in ``weights/``
    (or None: seeded random weights); ``base`` names the model this one is derived from by
    ``make_imbalanced`` (``derive="imbalanced"``); ``preprocess`` holds the digits loader options
    the model was trained with; ``published_gops`` is a figure quoted by Vitis AI, for comparison.
    """

    name: str
    description: str
    constructor: str
    input_shape: tuple[int, int, int, int]
    num_classes: int
    dataset: str
    weights: str | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    base: str | None = None
    derive: str | None = None
    published_gops: float | None = None

    @property
    def trainable(self) -> bool:
        """True when fixflow has a training recipe (the digits models)."""
        return self.dataset == "digits" and self.base is None


_DIGITS_PRE = {"size": 28, "normalize": False}

_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "digits_cnn",
        "MNIST-tutorial-style CNN (conv-bn-relu x3, maxpool, linear) trained on sklearn digits",
        "fixflow.zoo.models:DigitsCNN",
        (1, 1, 28, 28), 10, "digits", weights="digits_cnn.npz", preprocess=_DIGITS_PRE,
    ),
    ModelSpec(
        "tiny_mobilenet",
        "depthwise-separable net (dw3x3-bn-relu + pw1x1-bn-relu blocks, GAP, linear) trained on digits",
        "fixflow.zoo.models:TinyMobileNet",
        (1, 1, 28, 28), 10, "digits", weights="tiny_mobilenet.npz", preprocess=_DIGITS_PRE,
    ),
    ModelSpec(
        "tiny_mobilenet_imbalanced",
        "tiny_mobilenet with per-channel BN/next-conv rescaling up to 2^8 (same float function; "
        "breaks per-tensor quantization, for cross-layer equalization tests)",
        "fixflow.zoo.models:TinyMobileNet",
        (1, 1, 28, 28), 10, "digits", preprocess=_DIGITS_PRE,
        base="tiny_mobilenet", derive="imbalanced",
    ),
    ModelSpec(
        "resnet18",
        "ResNet-18, ImageNet stem (7x7/2 conv, 3x3/2 maxpool), seeded random weights",
        "fixflow.zoo.models:ResNet18",
        (1, 3, 224, 224), 1000, "imagenet", published_gops=3.6,
    ),
    ModelSpec(
        "resnet50",
        "ResNet-50 v1.5 (as pt_resnet50), ImageNet stem, seeded random weights",
        "fixflow.zoo.models:ResNet50",
        (1, 3, 224, 224), 1000, "imagenet", published_gops=8.2,
    ),
    ModelSpec(
        "resnet18_cifar",
        "ResNet-18 with a 3x3/1 stem and no maxpool, 32x32 CIFAR-style input, seeded random weights",
        "fixflow.zoo.models:ResNet18Cifar",
        (1, 3, 32, 32), 10, "cifar10",
    ),
    ModelSpec(
        "mobilenet_v2",
        "MobileNetV2 width 1.0 (ReLU6, inverted residuals), seeded random weights",
        "fixflow.zoo.models:MobileNetV2",
        (1, 3, 224, 224), 1000, "imagenet", published_gops=0.6,
    ),
    ModelSpec(
        "squeezenet1_1",
        "SqueezeNet 1.1 (as pt_squeezenet: fire modules, ceil-mode max pools, conv classifier), "
        "seeded random weights",
        "fixflow.zoo.models:SqueezeNet11",
        (1, 3, 224, 224), 1000, "imagenet", published_gops=0.7035,
    ),
)  # fmt: skip

REGISTRY: dict[str, ModelSpec] = {s.name: s for s in _SPECS}


def list_models() -> list[str]:
    """Names of all registered models, in registry order."""
    return list(REGISTRY)


def _normalize_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name`` (case-insensitive, '-' or '_'); UnknownModelError otherwise."""
    spec = REGISTRY.get(_normalize_name(name))
    if spec is None:
        raise UnknownModelError(f"unknown model {name!r} (available: {', '.join(REGISTRY)})")
    return spec


def manifest() -> dict[str, dict[str, Any]]:
    """Training records of the bundled weights (``weights/manifest.json``), keyed by model name."""
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def weights_path(name: str) -> Path | None:
    """Path of the bundled weights file of ``name`` (None if the model has none)."""
    spec = get_spec(name)
    return WEIGHTS_DIR / spec.weights if spec.weights else None


def float_accuracy(name: str) -> float | None:
    """Recorded float top-1 accuracy on the digits test split (derived models inherit their base's)."""
    spec = get_spec(name)
    rec = manifest().get(spec.base or spec.name)
    return None if rec is None else float(rec["test_accuracy"])


def _constructor(spec: ModelSpec) -> Any:
    module, attr = spec.constructor.split(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str, *, seed: int | None = None) -> Any:
    """A fresh model with PyTorch's default initialization under ``torch.manual_seed(seed)``
    (seed defaults to the registry's); the global RNG state is preserved. Train mode."""
    import torch

    spec = get_spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed if seed is None else seed)
        return _constructor(spec)(num_classes=spec.num_classes)


def get_model(name: str, pretrained: bool = True, *, seed: int | None = None) -> Any:
    """The model ``name`` in eval mode.

    Models with bundled weights get them when ``pretrained`` (else the seeded default init, the
    starting point of training). Models without bundled weights always get seeded random weights
    with calibrated BatchNorm statistics (``fixflow.zoo.seeded.randomize``). Derived models
    (``tiny_mobilenet_imbalanced``) are built from their base with the registry seed.
    """
    spec = get_spec(name)
    seed = spec.seed if seed is None else seed
    if spec.base is not None:
        base = get_model(spec.base, pretrained)
        if spec.derive == "imbalanced":
            from fixflow.zoo.imbalance import make_imbalanced

            return make_imbalanced(base, seed).eval()
        raise ZooError(f"model {spec.name!r}: unknown derivation {spec.derive!r}")
    model = build(spec.name, seed=seed)
    if spec.weights is not None:
        if pretrained:
            path = WEIGHTS_DIR / spec.weights
            if not path.exists():
                raise ZooError(
                    f"model {spec.name!r}: bundled weights {path} are missing "
                    f"(create them with `fixflow-zoo train {spec.name} --bundle`)"
                )
            from fixflow.zoo.checkpoint import load_npz

            load_npz(model, path)
        return model.eval()
    from fixflow.zoo.seeded import randomize

    return randomize(model, seed, spec.input_shape)


def load_data(name: str, split: str = "test") -> tuple[Any, Any]:
    """``(images, labels)`` of a digits split, preprocessed as model ``name`` expects (numpy)."""
    from fixflow.zoo import data

    spec = get_spec(name)
    if spec.dataset != "digits":
        raise ZooError(f"model {spec.name!r} is not a digits model: no bundled data for {spec.dataset}")
    pre = spec.preprocess
    return data.load_digits(split, size=pre.get("size", 8), normalize=pre.get("normalize", False))


def sample_inputs(name: str, n: int = 8, *, seed: int = 0, split: str = "train") -> Any:
    """``n`` float32 NCHW inputs for model ``name`` (e.g. for calibration or comparisons).

    Digits models: ``n`` images of ``split`` chosen by a seeded permutation. Other models:
    seeded N(0, 1) tensors, the distribution their seeded BatchNorm statistics were measured on.
    """
    import numpy as np

    spec = get_spec(name)
    if n < 1:
        raise ZooError(f"need at least one input, got n={n}")
    rng = np.random.default_rng(seed)
    if spec.dataset == "digits":
        x, _ = load_data(spec.name, split)
        return np.ascontiguousarray(x[np.sort(rng.permutation(len(x))[:n])])
    return rng.standard_normal((n, *spec.input_shape[1:])).astype(np.float32)


def count_macs(model: Any, input_shape: tuple[int, ...]) -> dict[str, int]:
    """MACs per Conv2d / ConvTranspose2d / Linear module (qualified name -> count) for one forward at
    ``input_shape``.

    Conv: output elements x (in_channels / groups) x kh x kw; transposed conv: input elements x
    (out_channels / groups) x kh x kw (every input pixel meets every kernel tap once); Linear: output
    elements x in_features. Works on real or ``meta``-device models.
    """
    import torch
    from torch import nn

    counts: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def fn(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
            if isinstance(mod, nn.ConvTranspose2d):
                kh, kw = mod.kernel_size
                counts[name] = counts.get(name, 0) + inp[0].numel() * (mod.out_channels // mod.groups) * kh * kw
                return
            if isinstance(mod, nn.Conv2d):
                kh, kw = mod.kernel_size
                per_out = (mod.in_channels // mod.groups) * kh * kw
            else:
                per_out = mod.in_features
            counts[name] = counts.get(name, 0) + out.numel() * per_out

        return fn

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            handles.append(mod.register_forward_hook(hook(name)))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return counts


def layer_table(name: str) -> list[dict[str, Any]]:
    """Per conv/linear layer of ``name`` at batch 1: qualified name, type, output shape, MACs."""
    import torch
    from torch import nn

    spec = get_spec(name)
    with torch.device("meta"):
        model = _constructor(spec)(num_classes=spec.num_classes).eval()
    shapes: dict[str, list[int]] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, n=n: shapes.__setitem__(n, list(out.shape)))
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        macs = count_macs(model, spec.input_shape)
    finally:
        for h in handles:
            h.remove()
    mods = dict(model.named_modules())
    rows = []
    for n, count in macs.items():
        m = mods[n]
        if isinstance(m, nn.Conv2d):
            kind = "dwconv" if m.groups > 1 and m.groups == m.in_channels else "conv"
            kind += f"{m.kernel_size[0]}x{m.kernel_size[1]}/{m.stride[0]}"
        else:
            kind = "linear"
        rows.append({"layer": n, "type": kind, "output_shape": shapes[n], "macs": count})
    return rows


@functools.lru_cache(maxsize=None)
def _structure(name: str) -> tuple[float, int]:
    import torch

    spec = get_spec(name)
    with torch.device("meta"):
        model = _constructor(spec)(num_classes=spec.num_classes).eval()
    macs = sum(count_macs(model, spec.input_shape).values())
    params = sum(p.numel() for p in model.parameters())
    return 2 * macs / 1e9, params


def gops(name: str) -> float:
    """Giga-operations of one inference (batch 1), 2 ops per conv/linear MAC."""
    return _structure(get_spec(name).name)[0]


def num_params(name: str) -> int:
    """Number of trainable parameters."""
    return _structure(get_spec(name).name)[1]


def describe(name: str) -> dict[str, Any]:
    """Everything known about ``name`` as a plain dict (JSON-serializable)."""
    spec = get_spec(name)
    rec = manifest().get(spec.base or spec.name)
    if spec.base is not None:
        weights = f"{spec.base} weights, {spec.derive} (seed {spec.seed})"
    elif spec.weights is not None:
        weights = f"bundled ({spec.weights})"
    else:
        weights = f"seeded random (seed {spec.seed})"
    return {
        "name": spec.name,
        "description": spec.description,
        "input_shape": list(spec.input_shape),
        "num_classes": spec.num_classes,
        "dataset": spec.dataset,
        "preprocess": dict(spec.preprocess),
        "gops": round(gops(spec.name), 4),
        "published_gops": spec.published_gops,
        "params": num_params(spec.name),
        "weights": weights,
        "float_accuracy": None if rec is None else float(rec["test_accuracy"]),
        "training": rec,
        "trainable": spec.trainable,
        "constructor": spec.constructor,
    }
