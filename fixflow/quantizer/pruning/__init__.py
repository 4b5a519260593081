"""Channel pruning of float torch models (vai_p_pytorch's optimizer, in fixflow's style).

    from fixflow.quantizer.pruning import get_pruning_runner, finetune
    runner = get_pruning_runner(model, (x,), "iterative", output_dir="build/prune")
    runner.ana(evaluate, args=(val_data,))          # sensitivity per layer group, saved and reused
    slim = runner.prune(removal_ratio=0.5)           # or channel_ratio=, mac_budget=, threshold=, spec_path=
    finetune(slim, train_loader, epochs=5)           # or your own training loop
    torch.save(slim.state_dict(), "pruned.pth")      # later: slim.load_state_dict(DigitsCNN(), torch.load(...))

The slim model is the same class with smaller Conv2d / BatchNorm2d / Linear layers; it quantizes with
``fixflow.quantizer.Quantizer``, compiles with ``fixflow-compile`` and runs with ``fixflow-run`` as any model.
See docs/pruning.md.
"""

from . import slim
from .errors import PruningError
from .finetune import finetune
from .graph import ChannelGroup, PruningGraph
from .runner import PruningRunner, PruningSpec, get_pruning_runner
from .sensitivity import Sensitivity
from .slim import load_state_dict

IterativePruningRunner = PruningRunner

__all__ = [
           "ChannelGroup",
           "IterativePruningRunner",
           "PruningError",
           "PruningGraph",
           "PruningRunner",
           "PruningSpec",
           "Sensitivity",
           "finetune",
           "get_pruning_runner",
           "load_state_dict",
           "slim",
]
