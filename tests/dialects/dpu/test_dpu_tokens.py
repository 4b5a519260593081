"""The dpdon/dpdby token protocol shared by the scheduler and the profiler."""

from fixflow.dialects.dpu.tokens import CONV_U, LOAD_U, MISC_U, SAVE_U, run_tokens, signals, unit_of, waits_on


def test_unit_of_and_own_bit_ignored():
    assert [unit_of(n) for n in ("LOAD", "SAVE", "END", "CONVINIT", "CONV", "POOL")] == \
        [LOAD_U, SAVE_U, SAVE_U, CONV_U, CONV_U, MISC_U]
    assert waits_on(0b1111, CONV_U) == [LOAD_U, SAVE_U, MISC_U]
    assert signals(0b0101, LOAD_U) == [CONV_U]


def test_tokens_order_units_and_carry_payloads():
    # CONV (index 0) waits for the LOAD at index 1, which signals CONV; SAVE waits for CONV
    units = [CONV_U, LOAD_U, SAVE_U]
    dpdon = [1 << LOAD_U, 0, 1 << CONV_U]
    dpdby = [1 << SAVE_U, 1 << CONV_U, 0]
    order = []

    def fire(j, u, received):
        order.append((j, received))
        return f"from {j}"

    run = run_tokens(units, dpdon, dpdby, fire)
    assert order == [(1, []), (0, ["from 1"]), (2, ["from 0"])]
    assert run.stuck == [] and run.unconsumed == []


def test_deadlock_and_unconsumed_tokens_are_reported():
    run = run_tokens([CONV_U], [1 << LOAD_U], [0], lambda j, u, r: j)
    assert run.stuck == [(CONV_U, 0)]
    run = run_tokens([LOAD_U, LOAD_U], [0, 0], [1 << CONV_U, 1 << CONV_U], lambda j, u, r: j)
    assert run.stuck == [] and run.unconsumed == [(LOAD_U, CONV_U, [0, 1])]
