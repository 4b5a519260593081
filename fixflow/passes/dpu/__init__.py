"""The DPU compiler (DPUCZDX8G ISA1, every size B512-B4096): `fix` module -> `dpu.program`s.

Passes (registered; `fixflow-opt` runs them and prints the IR between them, see `passes.py`):

    partition{target=...}   per op: DPU or CPU (with the reason); maximal DPU / CPU subgraphs
    allocate-ddr            REG_0 weights [OC][KH][KW][IC] then biases; REG_1 workspace with liveness
                            reuse; REG_2 inputs, REG_3 outputs (annotations on the fix ops)
    lower-to-dpu{tiling=}   tiling into the banks, instruction selection, bank allocation -> dpu.program
    schedule-dpu            dpdon/dpdby
    verify-dpu-schedule     proof: no deadlock, no hazard on any bank line or DDR block

Modules: `partition` (placement, subgraphs), `layers` (fix ops -> CONV / ALU / ELEW layers; dense as a
conv over the whole map, reshape as an alias), `tiling` (bands of output rows x columns whose input
window, halo rows included, fits half a feature-map bank group), `ddr` (DDR layout), `codegen`
(instructions; bank ping-pong between VB0 and VB1 band by band; fusion and on-chip chains), `schedule` (footprints of every
instruction, flags, checker), `program` (one subgraph end to end; programs back from an annotated
module).

How a layer runs: for each band (output rows x columns, and a chunk of output-channel groups whose
weights fit half the CONVW banks, the halves alternating so the next chunk's weights load meanwhile):
LOAD the input window into VB(t % 2) lines [0, depth/2), one CONV (PP rows x columns x OCP channels) per
strip and output-channel group, or one ALU (pooling, depthwise) / ELEW (add, mult) per ALU_PP rows,
into lines [depth/2, depth), then SAVE the rows. Conv activations are fused (CONV act_type). Maps stay
on chip where they can (`codegen.fusions`, `codegen.chains`): a conv and the ELEW right after it run
fused band by band (the conv's output never SAVEd), and a layer whose only reader is the next layer,
computing the whole map in one band, writes straight into that layer's input window (no SAVE, no LOAD).

Feature maps can be strided windows of another map's bytes (`layers.FMap.parent`: channel offset,
pixel origin and step); LOADs and SAVEs use their DDR pixel/row strides. That gives, without extra
engines: channel concat by placement (producers SAVE into their slice), nearest upsample (1x1 ALU
copies SAVEd with steps), constant pad (border SAVEd from a REG_0 row of the value, interior copied)
and transposed conv (zero-inserted input, then a stride-1 CONV with flipped weights). Hard sigmoid is
the ALU's HSIGMOID mode. docs/compiler.md ("Internals") has the details.

Python:

    from fixflow.passes.dpu import compile_annotated, load_programs
    PassManager.parse("partition{target=DPUCZDX8G_ISA1_B512},allocate-ddr,lower-to-dpu,schedule-dpu").run(m)
    prog, = load_programs(m)          # instructions, REG_0 bytes, region sizes, I/O addresses
    regions = prog.regions([x_int8])  # then fixflow.runtime.dpu.DPUInterpreter(target, prog.instructions, regions)
"""

from .passes import compile_pipeline
from .program import DpuProgram, annotated_subgraphs, compile_annotated, compile_subgraph, load_programs

__all__ = ["DpuProgram", "annotated_subgraphs", "compile_annotated", "compile_pipeline", "compile_subgraph",
           "load_programs"]
