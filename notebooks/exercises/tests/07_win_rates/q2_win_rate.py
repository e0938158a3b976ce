from otter.test_files import test_case

OK_FORMAT = False

name = "q2_win_rate"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format_and_not_a_known_slip(dpo_win_rate):
    from minidpo.grade import answer_digest
    assert 0.0 <= float(dpo_win_rate) <= 1.0, 'a win rate lies in [0, 1]'
    slips = {'db46d018417f': 'your rate counts ties as whole wins: a tie counts as half a win', '7c9ae09f2c62': 'your rate counts ties as losses: a tie counts as half a win', 'ec00f6a448b6': 'your rate leaves the ties out: a tie counts as half a win, over all ten prompts', 'bf3d35a0acfa': "your rate is the reference's: check which arm wins a prompt"}
    hint = slips.get(answer_digest(f'{round(float(dpo_win_rate), 4) + 0.0:.4f}'))
    assert hint is None, hint

