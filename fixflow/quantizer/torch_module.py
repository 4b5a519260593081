"""`quant_model` as a real `torch.nn.Module` (vai_q_pytorch scripts call `.eval()`, `.to(device)`,
`.parameters()`, `state_dict()` on it), and the `device=` argument (fixflow runs on the CPU)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from .errors import QuantizerError
from .input_checks import warn_user

__all__ = ["QuantModel", "check_device"]


def check_device(device: Any, log: Callable[[str], None] | None = None) -> torch.device:
    """The device quant_model runs on: always the CPU. A CUDA (or other) device is mapped to the CPU with
    a warning, as vai_q_pytorch maps `cuda` to `cpu` when no GPU is available."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise QuantizerError(f"device {device!r} is not a torch device ({e}); fixflow runs on 'cpu'") from None
    if dev.type != "cpu":
        warn_user(f"fixflow quantizes and simulates on the CPU: device '{dev}' is mapped to 'cpu' (the results are "
                  "the same: the simulation is exact)", log)
    return torch.device("cpu")


def _to_numpy(x: Any) -> np.ndarray:
    try:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy().astype(np.float32, copy=False)
        return np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError, RuntimeError) as e:
        raise QuantizerError(f"quant_model(): inputs must be torch tensors or numeric arrays, got "
                             f"{type(x).__name__} ({e})") from None


class QuantModel(torch.nn.Module):
    """The model of a Quantizer, as a `torch.nn.Module`: tensors (or numpy arrays) in, the same kind out.

    Its forward is the Quantizer's: float execution, calibration or the exact fixed-point simulation
    (`mode`). Its parameters are the weights and biases the quantizer works on (BN folded, equalized,
    bias corrected), frozen, under the float model's names (`conv1.weight`); they are a snapshot for
    inspection: changing them does not change the quantized results. It lives on the CPU: `.to("cuda")`
    and `.cuda()` warn and stay there.
    """

    def __init__(self, fn: Callable[[list[np.ndarray]], list[np.ndarray]], mode: str,
                 params: Mapping[str, np.ndarray] | None = None, log: Callable[[str], None] | None = None):
        super().__init__()
        self._fn = fn
        self.mode = mode
        self._warn_log = log
        for key, arr in (params or {}).items():
            *path, leaf = key.split(".")
            m: torch.nn.Module = self
            for p in path:
                sub = m._modules.get(p)
                if sub is None:
                    sub = torch.nn.Module()
                    m.add_module(p, sub)
                m = sub
            m.register_parameter(leaf, torch.nn.Parameter(torch.from_numpy(np.array(arr, np.float32)),
                                                          requires_grad=False))
        self.eval()

    def forward(self, *inputs: Any) -> Any:
        as_torch = any(isinstance(x, torch.Tensor) for x in inputs)
        outs = self._fn([_to_numpy(x) for x in inputs])
        if as_torch:
            outs = [torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)) for y in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def to(self, *args: Any, **kwargs: Any) -> "QuantModel":
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None:
            check_device(device, self._warn_log)
        if dtype is not None and dtype != torch.float32:
            raise QuantizerError(f"quant_model.to({dtype}): the quantized model computes in fixed point and "
                                 "takes and returns float32 tensors")
        return self

    def cuda(self, device: Any = None) -> "QuantModel":
        check_device("cuda" if device is None else torch.device("cuda", device) if isinstance(device, int) else device,
                     self._warn_log)
        return self
