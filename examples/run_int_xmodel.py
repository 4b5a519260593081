"""Read a `<Model>_int.xmodel` back into the `fix` dialect and run it in integer arithmetic on the
digits test split; compare with the float model of the zoo.

    python examples/run_int_xmodel.py out/quantize_result/DigitsCNN_int.xmodel [--model digits_cnn]
"""

import argparse
import sys

import numpy as np

from fixflow.backends.xmodel.fix_xmodel import read_int_xmodel
from fixflow.runtime.fix_executor import run_quantized, simulate_quantized
from fixflow.ir.diagnostics import FixflowError
from fixflow.zoo import registry


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("xmodel")
    p.add_argument("--model", default="digits_cnn", help="zoo model whose float accuracy is the reference")
    args = p.parse_args(argv)
    try:
        module = read_int_xmodel(args.xmodel)
    except FixflowError as e:
        print(f"error: {e.render()}", file=sys.stderr)
        return 1
    x, y = registry.load_data(args.model, "test")
    logits_int, = run_quantized(module, [x])
    logits_sim, = simulate_quantized(module, [x])
    import torch
    model = registry.get_model(args.model)
    with torch.no_grad():
        logits_float = model(torch.from_numpy(x)).numpy()
    acc_int = float((logits_int.argmax(1) == y).mean())
    acc_float = float((logits_float.argmax(1) == y).mean())
    agree = float((logits_int.argmax(1) == logits_float.argmax(1)).mean())
    err = logits_int - logits_float
    sqnr = 10 * np.log10(np.sum(logits_float ** 2) / max(np.sum(err ** 2), 1e-30))
    print(f"{args.xmodel}: {len(y)} test images")
    print(f"  float accuracy            {100 * acc_float:.2f}%")
    print(f"  integer accuracy          {100 * acc_int:.2f}%   (top-1 agreement with float {100 * agree:.2f}%,"
          f" logit SQNR {sqnr:.1f} dB)")
    print(f"  simulation == integer     {np.array_equal(logits_int, logits_sim)} (bit for bit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
