"""fixflow.target: every ISA1 size, fingerprints, banks, engine limits, arch.json, boards."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixflow.ir.diagnostics import FixflowError
from fixflow.target import (SUPPORTED_NAMES, FeatureCode, Target, TargetError, all_targets, get_board,
                            get_target)

REF = Path(__file__).resolve().parents[3] / "shared" / "reference" / "DPUCZDX8G_ISA1_B4096.prototxt"

# Facts from AMD's target_factory prototxt files (targets/DPUCZDX8G_ISA1_B*.prototxt), typed in by hand:
# size: (feature code, PP, ICP, ALU_PP, CONVW base, DWCONVW base, BIAS base)
AMD_FACTS = {
    512: (0x000056010200, 4, 8, 2, 8, 16, 17),
    800: (0x000056010201, 4, 10, 2, 8, 18, 19),
    1024: (0x000056010402, 8, 8, 4, 16, 24, 25),
    1152: (0x000056010203, 4, 12, 2, 8, 20, 21),
    1600: (0x000056010404, 8, 10, 4, 16, 26, 27),
    2304: (0x000056010405, 8, 12, 4, 16, 28, 29),
    3136: (0x000056010406, 8, 14, 4, 16, 30, 31),
    4096: (0x000056010407, 8, 16, 4, 16, 32, 33),
}


@pytest.mark.parametrize("size", sorted(AMD_FACTS))
def test_every_size_matches_amd(size):
    fc, pp, icp, alu_pp, convw, dwconvw, bias = AMD_FACTS[size]
    t = get_target(f"DPUCZDX8G_ISA1_B{size}")
    assert t.fingerprint == 0x0101 << 48 | fc
    assert (t.pp, t.icp, t.ocp, t.alu_pp, t.peak_ops) == (pp, icp, icp, alu_pp, size)
    assert t.isa == 1 and t.name == f"DPUCZDX8G_ISA1_B{size}" and t.is_shipped
    g = {b.name: b for b in t.banks}
    assert [b.name for b in t.banks] == ["VB0", "VB1", "CONVW", "DWCONVW", "BIAS"]
    assert (g["VB0"].first_id, g["VB0"].count, g["VB1"].first_id, g["VB1"].count) == (0, pp, pp, pp)
    assert (g["CONVW"].first_id, g["CONVW"].count) == (convw, icp)
    assert (g["DWCONVW"].first_id, g["DWCONVW"].count) == (dwconvw, 1)
    assert (g["BIAS"].first_id, g["BIAS"].count) == (bias, 1)
    assert all(b.width_bytes == icp and b.depth == 2048 for b in t.banks)
    assert t.channel_augmentation == 2 * icp
    assert t.conv.stride_out_h.hi == 4 and t.alu.stride_out_h.hi == 4
    assert t.elew.pixel_parallel == alu_pp and t.alu.pixel_parallel == alu_pp
    assert Target.from_fingerprint(t.fingerprint) == t
    assert get_target(t.fingerprint_hex).name == t.name


def _parse_prototxt(text):
    """Just enough of protobuf text format for the reference file: blocks and key: value."""
    root, stack = {}, []
    cur = root
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            new = {}
            cur.setdefault(line[:-1].strip(), []).append(new)
            stack.append(cur)
            cur = new
        elif line == "}":
            cur = stack.pop()
        else:
            k, v = (s.strip() for s in line.split(":", 1))
            v = v.strip('"')
            cur.setdefault(k, []).append(int(v, 0) if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", v) else v)
    return root


def test_b4096_matches_reference_prototxt():
    ref = _parse_prototxt(REF.read_text())
    t = get_target(ref["name"][0])
    assert t.feature_code == ref["feature_code"][0] and t.isa == ref["isa_version"][0]
    for bg, b in zip(ref["bank_group"], t.banks, strict=True):
        assert (b.name, b.amd_type, b.first_id, b.count, b.width_bytes, b.depth) == (
            bg["name"][0], bg["type"][0], bg["base_id"][0], bg["bank_num"][0], bg["bank_width"][0],
            bg["bank_depth"][0])
    conv = ref["conv_engine"][0]
    assert (t.conv.pixel_parallel, t.conv.input_channel_parallel, t.conv.output_channel_parallel) == (
        conv["pixel_parallel"][0], conv["input_channel_parallel"][0], conv["output_channel_parallel"][0])
    assert t.channel_augmentation == conv["channel_augmentation"][0]["channel_num"][0]
    amd_nl = {"relu": "relu", "leaky_relu": "leaky_relu", "relu_six": "relu6"}
    assert t.conv.nonlinear == tuple(amd_nl[n] for n in conv["nonlinear"][0]["nonlinear_type"])
    lim = conv["conv_limit"][0]
    assert (str(t.conv.kernel), str(t.conv.stride), str(t.conv.stride_out_h)) == (
        lim["kernel_size"][0], lim["stride"][0], lim["stride_out_h"][0])
    alu = ref["alu_engine"][0]
    assert t.alu.pixel_parallel == alu["pixel_parallel"][0] == t.alu_pp
    assert t.alu.alu_types == tuple(alu["alu_type"])
    assert t.alu.nonlinear == tuple(amd_nl[n] for n in alu["nonlinear"][0]["nonlinear_type"])
    al, pl = alu["alu_limit"][0], alu["pad_limit"][0]
    assert (str(t.alu.kernel), str(t.alu.stride), str(t.alu.stride_out_h)) == (
        al["kernel_size"][0], al["stride"][0], al["stride_out_h"][0])
    assert [str(t.alu.pad_left), str(t.alu.pad_right), str(t.alu.pad_top), str(t.alu.pad_bottom)] == [
        pl["pad_left"][0], pl["pad_right"][0], pl["pad_top"][0], pl["pad_bottom"][0]]
    elew = ref["eltwise_engine"][0]
    assert t.elew.elew_types == tuple(elew["elew_type"]) and t.elew.pixel_parallel == elew["pixel_parallel"][0]
    assert t.elew.nonlinear == tuple(amd_nl[n] for n in elew["nonlinear"][0]["nonlinear_type"])
    assert t.save_argmax == (ref["save_engine"][0]["argmax"][0] == "true")


def test_b4096_fingerprint_and_the_25_variant():
    t = get_target("DPUCZDX8G_ISA1_B4096")
    assert t.fingerprint == 0x0101000056010407
    old = Target.from_fingerprint(0x0101000016010407)
    assert old.fingerprint ^ t.fingerprint == 1 << 30
    assert not old.save_argmax and t.save_argmax
    assert not old.is_shipped and old.name == "DPUCZDX8G_ISA1_B4096_0101000016010407"
    assert old.base_name == "DPUCZDX8G_ISA1_B4096" and old.banks == t.banks
    assert get_target(old.name) == old


def test_bank_group_lookup_and_limits():
    t = get_target("DPUCZDX8G_ISA1_B4096")
    assert [t.bank_group(i).name for i in (0, 7, 8, 15, 16, 31, 32, 33)] == [
        "VB0", "VB0", "VB1", "VB1", "CONVW", "CONVW", "DWCONVW", "BIAS"]
    assert t.bank_group(16).size_bytes == 512 * 1024 and t.bank_group(0).size_bytes == 256 * 1024
    with pytest.raises(TargetError, match="no bank 34"):
        t.bank_group(34)
    with pytest.raises(TargetError, match="no bank -1"):
        t.bank_group(-1)
    # kw * kh * ceil(ic / 16) <= 2048
    assert t.conv_weight_lines(3, 3, 17) == 18
    assert t.fits_weight_bank(16, 16, 128) and not t.fits_weight_bank(16, 16, 129)
    assert t.fits_weight_bank(13, 13, 32 * 6) and not t.fits_weight_bank(13, 13, 32 * 7)
    small = get_target("DPUCZDX8G_ISA1_B512")
    assert small.fits_weight_bank(16, 16, 64) and not small.fits_weight_bank(16, 16, 65)
    assert 16 in t.conv.kernel and 17 not in t.conv.kernel and 0 not in t.conv.stride
    assert 15 in t.alu.pad_left and 16 not in t.alu.pad_left and 255 in t.alu.pad_bottom
    assert t.supported_nonlinear("conv") == ("relu", "leaky_relu", "relu6")
    assert t.supported_nonlinear("elew") == ("relu",)
    assert t.supported_nonlinear("alu") == ("relu", "relu6")
    with pytest.raises(TargetError, match="unknown engine 'pool'"):
        t.supported_nonlinear("pool")


@given(st.sampled_from(range(8)), st.integers(1, 15), st.integers(1, 3), st.booleans(), st.booleans(),
       st.booleans(), st.booleans(), st.integers(0, 3), st.integers(0, 3),
       st.integers(0, 2**48 - 1))
def test_fingerprint_round_trip(arch, alu_pp, bg, augm, cv, dw, am, cwp, awp, noise):
    other = noise & ~(0xF | 0xF << 8 | 0x3 << 24 | 1 << 26 | 0x7 << 28 | 0xF << 32)
    fc = FeatureCode(arch, alu_pp, bg, augm, cv, dw, am, cwp, awp, other)
    t = Target.from_features(fc)
    assert t.features == fc
    assert FeatureCode.decode(t.feature_code).encode() == t.feature_code
    assert Target.from_fingerprint(t.fingerprint).fingerprint == t.fingerprint
    assert get_target(t.name) == t
    assert len(t.feature_map_groups) == bg
    assert t.banks[-1].name == "BIAS" and t.num_banks == bg * t.pp + t.ocp + 2
    assert ("leaky_relu" in t.conv.nonlinear) == cv and ("leaky_relu" in t.alu.nonlinear) == dw
    wp = 2 ** cwp
    assert t.conv.stride_out_h.hi == (4 if wp == 1 or t.pp // wp >= 4 else t.pp // wp)


def test_shipped_round_trip_every_size():
    for t in all_targets():
        assert Target.from_features(FeatureCode.decode(t.feature_code)) == t
        assert Target.from_name(t.name).fingerprint == t.fingerprint
    assert [t.name for t in all_targets()] == list(SUPPORTED_NAMES)


@pytest.mark.parametrize("spec, msg", [
    ("DPUCVDX8G_ISA3_C32B6", "DPUCVDX8G targets are not supported"),
    ("DPUCAHX8H_ISA2", "DPUCAHX8H targets are not supported"),
    ("DPUCZDX8G_ISA1_B9999", "unknown size B9999"),
    ("DPUCZDX8G_ISA0_B4096", "not a supported DPUCZDX8G target"),
    ("resnet", "unknown target"),
    (0x0601000000000000, "is DPUCVDX8G \\(type 6\\): not supported"),
    (0x0201000000000000, "is DPUCAHX8H"),
    (0x7F01000000000000, "unknown DPU type 127"),
    (0x0100000056010407, "DPUCZDX8G ISA0: not supported"),
    (0x0101000056010408, "ARCH 8 \\(PP 4 x ICP 4\\)"),
    (0x010100005601040F, "ARCH 15 \\(an invalid ARCH\\)"),
    (0x0101000054010407, "no feature-map bank groups"),
    (0x0101000056010007, "ALU pixel parallelism 0"),
    ("DPUCZDX8G_ISA1_B1024_0101000056010407", "is a B4096, not a B1024"),
    (-1, "unsigned 64-bit"),
    (2**64, "unsigned 64-bit"),
    (3.5, "cannot make a target"),
])
def test_unsupported_targets_are_one_error(spec, msg):
    with pytest.raises(TargetError, match=msg) as e:
        get_target(spec)
    assert isinstance(e.value, FixflowError) and "\n" not in e.value.message
    if isinstance(spec, str) and "DPUCZDX8G_ISA1_B" not in spec:
        assert "DPUCZDX8G_ISA1_B512" in e.value.message and "DPUCZDX8G_ISA1_B4096" in e.value.message


def test_arch_json_both_forms(tmp_path):
    a = tmp_path / "a.json"
    a.write_text('{"target": "DPUCZDX8G_ISA1_B1600"}')
    assert Target.from_arch_json(a).peak_ops == 1600
    b = tmp_path / "b.json"
    b.write_text('{"fingerprint": "0x0101000056010407"}')
    assert Target.from_arch_json(b).name == "DPUCZDX8G_ISA1_B4096"
    b.write_text('{"fingerprint": "0x101000016010407"}')
    assert Target.from_arch_json(b).fingerprint == 0x0101000016010407
    assert get_target(str(b)) == Target.from_arch_json(b) == get_target(b)
    t = get_target("DPUCZDX8G_ISA1_B2304")
    for by in ("target", "fingerprint"):
        c = tmp_path / f"{by}.json"
        c.write_text(json.dumps(t.arch_json(by)))
        assert Target.from_arch_json(c) == t


@pytest.mark.parametrize("text, msg", [
    ("{", "1:2: not valid JSON"),
    ("[]", "expected a JSON object"),
    ("{}", "exactly one of"),
    ('{"target": "DPUCZDX8G_ISA1_B4096", "fingerprint": "0x0101000056010407"}', "exactly one of"),
    ('{"target": 4096}', '"target" must be a string'),
    ('{"fingerprint": "banana"}', "not a number"),
    ('{"fingerprint": [1]}', '"fingerprint" must be a hex string'),
    ('{"fingerprint": "0x0601000000000000"}', "DPUCVDX8G"),
    ('{"target": "DPUCVDX8G_ISA3_C32B6"}', "DPUCVDX8G targets are not supported"),
])
def test_bad_arch_json(tmp_path, text, msg):
    p = tmp_path / "arch.json"
    p.write_text(text)
    with pytest.raises(TargetError, match=msg) as e:
        Target.from_arch_json(p)
    assert str(p) in e.value.message


def test_arch_json_unreadable(tmp_path):
    with pytest.raises(TargetError, match="cannot read arch.json"):
        Target.from_arch_json(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TargetError, match="cannot read arch.json"):
        Target.from_arch_json(tmp_path / "bin.json")


def test_boards():
    z102, z104, kv = get_board("zcu102"), get_board("ZCU104"), get_board("kv260")
    assert (z102.cores, z102.clock_mhz, z102.target.name) == (3, 281.0, "DPUCZDX8G_ISA1_B4096")
    assert (z104.cores, z104.clock_mhz, z104.target.name) == (2, 300.0, "DPUCZDX8G_ISA1_B4096")
    assert (kv.cores, kv.clock_mhz, kv.target.name) == (1, 300.0, "DPUCZDX8G_ISA1_B4096")
    assert round(z104.peak_ops_per_second / 1e12, 2) == 2.46  # PG338 / Vitis AI: 2.46 TOPS
    for b in (z102, z104, kv):
        assert b.arch_json_path.is_file()
        assert json.loads(b.arch_json_path.read_text()) == {"target": "DPUCZDX8G_ISA1_B4096"}
        assert 10 < b.ddr_bandwidth_gbps < 40 and b.ddr_bytes_per_second == b.ddr_bandwidth_gbps * 1e9
        assert get_target(b.name) == b.target
    with pytest.raises(TargetError, match="unknown board 'vck190'.*zcu102, zcu104, kv260"):
        get_board("vck190")


def test_describe_names_every_bank_group():
    text = get_target("DPUCZDX8G_ISA1_B800").describe()
    for name in ("VB0", "VB1", "CONVW", "DWCONVW", "BIAS", "PP 4 x ICP 10 x OCP 10", "0x0101000056010201"):
        assert name in text
