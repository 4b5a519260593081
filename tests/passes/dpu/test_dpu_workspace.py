"""REG_1 laid out again from the instructions (`fixflow.passes.dpu.workspace`, run by `lower-to-dpu`):
maps kept on chip get no bytes, two maps share a 16-byte block only when one is done with it before the
other touches it (instruction order),
the rewritten instructions are what the compiler makes again from the rewritten annotations, the region
size is the layout's end, and random networks stay bit-exact with the checker passing (every size)."""

from __future__ import annotations

import numpy as np
import pytest
from _dpu_testlib import (
    FT,
    SIZES,
    assert_bit_exact,
    compile_module,
    conv_ops,
    dw_ops,
    module_with,
    pool_ops,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixflow.dialects.dpu.ops import ProgramOp
from fixflow.dialects.fix import ops as Q
from fixflow.ir.passes import PassManager
from fixflow.passes.dpu.ddr import REG_WORK, align
from fixflow.passes.dpu.program import annotated_subgraphs, compile_annotated
from fixflow.passes.dpu.workspace import ON_CHIP, reallocate_workspace
from fixflow.target import get_target


def _block(kind, v, rng, k):
    """One block of a random network on feature map `v` (its ops, the last one's result the block's)."""
    _, h, w, c = v.type.shape
    if kind == "conv":
        return conv_ops(v, rng, int(rng.integers(4, 40)), (3, 3), pad=(1, 1, 1, 1), act="RELU", name=f"c{k}")
    if kind == "down" and h >= 2 and w >= 2:
        return conv_ops(v, rng, int(rng.integers(4, 40)), (3, 3), (2, 2), (1, 1, 1, 1), "RELU", name=f"d{k}")
    if kind == "pool" and h >= 2 and w >= 2:
        return pool_ops(v, "MAX", (2, 2), (2, 2), name=f"p{k}")
    if kind == "dw":
        return dw_ops(v, rng, (3, 3), pad=(1, 1, 1, 1), act="RELU", name=f"dw{k}")
    if kind == "res":                   # conv -> conv -> add(., v): the add may fuse, v has two readers
        ops = conv_ops(v, rng, c, (3, 3), pad=(1, 1, 1, 1), act="RELU", fps=(7, 6, 3), name=f"ra{k}")
        ops += conv_ops(ops[-1].results[0], rng, c, (1, 1), fps=(7, 6, 4), name=f"rb{k}")
        e = Q.EltwiseOp.build([ops[-1].results[0], v], type="ADD", nonlinear="RELU",
                              result_types=[FT(tuple(v.type.shape), 8, 4)])
        e.results[0].name_hint = f"radd{k}"
        return ops + [e]
    if kind == "cat":                   # two branches placed into a concat buffer
        a = conv_ops(v, rng, int(rng.integers(2, 20)), (1, 1), act="RELU", name=f"ca{k}")
        b = conv_ops(v, rng, int(rng.integers(2, 20)), (3, 3), pad=(1, 1, 1, 1), act="RELU", name=f"cb{k}")
        oc = a[-1].results[0].type.shape[3] + b[-1].results[0].type.shape[3]
        cat = Q.ConcatOp.build([a[-1].results[0], b[-1].results[0]], axis=3, result_types=[FT((1, h, w, oc), 8, 4)])
        cat.results[0].name_hint = f"cat{k}"
        return a + b + [cat]
    return conv_ops(v, rng, int(rng.integers(4, 40)), (1, 1), act="RELU", name=f"c{k}")


def _network(kinds, h, w, c, seed):
    rng = np.random.default_rng(seed)

    def build(x):
        ops, v = [], x
        for k, kind in enumerate(kinds):
            new = _block(kind, v, rng, k)
            ops += new
            v = new[-1].results[0]
        return ops
    return module_with((1, h, w, c), 5, build)


def _programs(m):
    func = next(op for op in m.body.ops if op.name == "func.func")
    progs = {op.sym_name: op for op in m.body.ops if isinstance(op, ProgramOp)}
    return func, [(sg, progs[sg.name]) for sg in annotated_subgraphs(func) if sg.name in progs]


def _fields(instrs):
    return [(i.name, dict(i.fields)) for i in instrs]


def check_layout(m) -> list[tuple[int, int, int]]:
    """The workspace properties of every DPU subgraph of compiled module `m`; returns per subgraph
    (REG_1 bytes, naive sum, allocate-ddr's REG_1)."""
    func, pairs = _programs(m)
    res = []
    for sg, op in pairs:
        target = get_target(op.target)
        dp = compile_annotated(sg, target, flags=False)
        # the annotations give back exactly the rewritten program (dpdon/dpdby aside)
        assert _fields(dp.instructions) == _fields(op.instructions())
        peak, naive, before = (int(x) for x in func.attributes["dpu.workspace"].value[sg.name].value)
        size = int(op.attributes["reg_id_to_size"].value.get("REG_1").value) if "REG_1" in \
            op.attributes["reg_id_to_size"].value else 0
        assert size == peak == dp.reg_sizes.get(REG_WORK, 0)
        assert int(func.attributes["dpu.ddr_sizes"].value[sg.name].value[REG_WORK]) == peak
        # which map each REG_1 access touches (a LOAD: an input of its layer, a SAVE: the output)
        roots = {}
        for L in dp.layers:
            for f in [*L.inputs, L.out]:
                r = f.root()
                if r.ddr[0] == REG_WORK:
                    roots[id(r)] = r
        assert naive == sum(align(r.nbytes) for r in roots.values())
        live: dict[int, list[int]] = {}
        blocks: dict[int, dict[int, list[int]]] = {}     # map -> 16-byte block -> [first, last] instruction
        for k, (ins, li) in enumerate(zip(dp.instructions, dp.layer_of)):
            if ins.name not in ("LOAD", "SAVE") or ins["reg_id"] != REG_WORK:
                continue
            jump = ins["jump_read"] if ins.name == "LOAD" else ins["jump_write"]
            lo, hi = ins["ddr_addr"], ins["ddr_addr"] + (ins["length"] - 1) * jump + ins["channel"]
            assert 0 <= lo and hi <= peak
            L = dp.layers[li]
            maps = L.inputs if ins.name == "LOAD" else [L.out]
            hits = {id(f.root()) for f in maps if f.root().ddr[0] == REG_WORK and f.root().ddr[1] != ON_CHIP
                    and f.root().ddr[1] <= lo and hi <= f.root().ddr[1] + f.root().nbytes}
            assert len(hits) == 1, (k, ins)
            key = hits.pop()
            iv = live.setdefault(key, [k, k])
            iv[1] = k
            for b in range(lo // 16, -(-hi // 16)):           # absolute 16-byte blocks of REG_1
                blk = blocks.setdefault(key, {}).setdefault(b, [k, k])
                blk[1] = k
        for key, r in roots.items():
            assert (r.ddr[1] == ON_CHIP) == (key not in live), r.name      # on chip <=> never touched
        placed = [(key, roots[key].ddr[1], roots[key].ddr[1] + roots[key].nbytes) for key in live]
        assert peak == (max(align(e) for _, _, e in placed) if placed else 0)
        for x, (k1, a1, b1) in enumerate(placed):
            for k2, a2, b2 in placed[x + 1:]:
                # two maps share a 16-byte block only when one is done with it before the other touches it
                for b in set(blocks[k1]) & set(blocks[k2]):
                    (f1, l1), (f2, l2) = blocks[k1][b], blocks[k2][b]
                    assert l1 < f2 or l2 < f1, (roots[k1].name, roots[k2].name, b)
        assert peak <= naive
        res.append((peak, naive, before))
    return res


KINDS = st.lists(st.sampled_from(["conv", "down", "pool", "dw", "res", "cat", "1x1"]), min_size=2, max_size=7)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(KINDS, st.integers(2, 24), st.integers(2, 24), st.integers(1, 24), st.sampled_from(SIZES),
       st.integers(0, 2**16))
def test_random_networks_layout_and_bit_exact(kinds, h, w, c, size, seed):
    m = _network(kinds, h, w, c, seed)
    x = [np.random.default_rng(seed).uniform(-2, 2, size=(1, h, w, c)).astype(np.float32)]
    assert_bit_exact(m, f"DPUCZDX8G_ISA1_B{size}", x, mode="fast")     # runs verify-dpu-schedule too
    check_layout(m)


def test_chain_and_fusion_maps_get_no_bytes():
    """conv -> pool -> conv chained, then a residual block whose conv fuses with the add: the chain's
    and the fused conv's maps never reach DDR; REG_1 shrinks below allocate-ddr's layout."""
    m = _network(["conv", "pool", "conv", "res"], 16, 16, 8, 1)
    compile_module(m, "DPUCZDX8G_ISA1_B4096")
    ((peak, naive, before),) = check_layout(m)
    _, ((sg, _),) = _programs(m)
    ddr = {op.results[0].name_hint: [int(v) for v in op.attributes["dpu.ddr"].value]
           for op in sg.ops if "dpu.ddr" in op.attributes}
    assert ddr["c0"] == ddr["p1"] == ddr["rb3"] == [REG_WORK, ON_CHIP]
    assert ddr["c2"][1] >= 0                     # read by the residual block's conv and by its add
    assert peak < before < naive


def test_pool_output_reuses_the_input_rows_it_has_read():
    """A 2x2/2 max pool over a map too big for one band: its output goes over the input rows the earlier
    bands have read (16-byte blocks, instruction order), so REG_1 is less than input + output."""
    m = _network(["conv", "pool", "1x1"], 64, 64, 8, 5)
    compile_module(m, "DPUCZDX8G_ISA1_B512")
    ((peak, _, before),) = check_layout(m)
    _, ((sg, _),) = _programs(m)
    ddr = {op.results[0].name_hint: [int(v) for v in op.attributes["dpu.ddr"].value]
           for op in sg.ops if "dpu.ddr" in op.attributes}
    conv, pool = next(k for k in ddr if k.startswith("c0")), next(k for k in ddr if k.startswith("p1"))
    shapes = {op.results[0].name_hint: op.results[0].type.shape for op in sg.ops if op.results}
    nbytes = {k: int(np.prod(shapes[k])) for k in (conv, pool)}
    assert ddr[conv][1] <= ddr[pool][1] < ddr[conv][1] + nbytes[conv]     # inside the input's bytes
    assert peak < before == align(nbytes[conv]) + align(nbytes[pool])


def test_layers_option_keeps_allocate_ddr_layout():
    m = _network(["conv", "pool", "res", "cat"], 12, 10, 6, 2)
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-2, 2, size=(1, 12, 10, 6)).astype(np.float32)]
    PassManager.parse("partition{target=DPUCZDX8G_ISA1_B1024},allocate-ddr").run(m)
    func = next(op for op in m.body.ops if op.name == "func.func")
    before = {op: op.attributes["dpu.ddr"].value for op in func.body.ops if "dpu.ddr" in op.attributes}
    PassManager.parse("lower-to-dpu{workspace=layers},schedule-dpu,verify-dpu-schedule").run(m)
    assert {op: op.attributes["dpu.ddr"].value for op in before} == before
    from _dpu_testlib import fix_reference, run_program

    from fixflow.passes.dpu.program import load_programs
    (prog,) = load_programs(m)
    for x in xs:
        xin, ref = fix_reference(m, x)
        np.testing.assert_array_equal(run_program(prog, xin, "fast").reshape(-1), ref.reshape(-1))
    with pytest.raises(Exception, match="option workspace"):
        PassManager.parse("lower-to-dpu{workspace=none}").run(m)


def test_lowering_twice_gives_the_same_program():
    """The second lower-to-dpu starts from the first's layout (reused bytes, maps on chip) and keeps it."""
    m = _network(["conv", "res", "down", "cat", "pool"], 20, 18, 5, 3)
    compile_module(m, "DPUCZDX8G_ISA1_B2304")
    _, ((sg, op),) = _programs(m)
    first, ann = _fields(op.instructions()), {o: o.attributes["dpu.ddr"].value for o in sg.ops
                                              if "dpu.ddr" in o.attributes}
    PassManager.parse("lower-to-dpu").run(m)
    _, ((sg, op),) = _programs(m)
    assert _fields(op.instructions()) == first
    assert {o: o.attributes["dpu.ddr"].value for o in ann} == ann


def test_instruction_outside_its_maps_is_refused():
    m = _network(["conv", "res"], 8, 8, 4, 4)
    PassManager.parse("partition{target=DPUCZDX8G_ISA1_B4096},allocate-ddr").run(m)
    func = next(op for op in m.body.ops if op.name == "func.func")
    (sg,) = [s for s in annotated_subgraphs(func) if s.device == "DPU"]
    prog = compile_annotated(sg, get_target("DPUCZDX8G_ISA1_B4096"), flags=False)
    k = next(k for k, i in enumerate(prog.instructions) if i.name == "SAVE" and i["reg_id"] == REG_WORK)
    prog.instructions[k].fields["ddr_addr"] += 1 << 20
    with pytest.raises(ValueError, match=rf"instruction {k} \(SAVE of layer .*\) touches REG_1 bytes .* of no "):
        reallocate_workspace(prog)
