from otter.test_files import test_case

OK_FORMAT = False

name = "q4_ipo_table_margins"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_are_numbers_and_not_a_known_slip(ipo_margin_ab, ipo_margin_ac):
    from minidpo.grade import answer_digest
    assert isinstance(ipo_margin_ab, (int, float)) and isinstance(ipo_margin_ac, (int, float)), 'set two numbers'
    assert ipo_margin_ab > 0 and ipo_margin_ac > 0, 'every label prefers the first response: both margins are positive'
    slips = {'64e4b892473f': 'your h(a, c) sits at the target 1 / (2 beta): then h(a, b) + h(b, c) does too, and the two short gaps fall short of theirs; the squared loss trades the three pairs off', '7a284f128e61': 'you fitted a > b and b > c exactly and let a > c overshoot: the squared loss trades the three pairs off', '2b0deac4c6f0': 'your margins use a target of 1 / beta: check the factor 2', 'e4e252fcdd07': 'your margins use a target of beta / 2: check where beta goes', '65ad3edd485f': 'your h(a, c) is the smaller margin: a > c spans both steps, h(a, c) = h(a, b) + h(b, c)'}
    hint = slips.get(answer_digest(f'{round(float(ipo_margin_ac), 4) + 0.0:.4f}'))
    assert hint is None, hint
    assert abs(ipo_margin_ac - 2 * ipo_margin_ab) < 1e-06, 'a and c play symmetric roles, so h(a, b) = h(b, c) at the minimum: h(a, c) is twice h(a, b)'

