from otter.test_files import test_case

OK_FORMAT = False

name = "q2_count_positions"
points = None

@test_case(points=0, hidden=False)
def test_are_ints_and_not_a_known_slip(n_scored, n_padding):
    from minidpo.grade import answer_digest
    assert isinstance(n_scored, int) and isinstance(n_padding, int), 'set two Python ints (int(...) on a tensor)'
    scored_slips = {'0e7432826ecb': 'your count includes the prompt tokens: only reply tokens are scored', '15b54a83f58f': 'your count is every predicted position (t >= 1), the prompt included: only reply tokens are scored', 'c0202b321689': 'your count leaves out the EOS tokens: the EOS ends each reply and is scored too'}
    padding_slips = {'f9399c01124d': 'your count includes the EOS tokens: id 0 is also the EOS; padding is where attention_mask is 0', '0e7432826ecb': 'you counted the real tokens: padding is where attention_mask is 0'}
    key = lambda x: answer_digest(f'{round(float(x), 4) + 0.0:.4f}')
    hint = scored_slips.get(key(n_scored)) or padding_slips.get(key(n_padding))
    assert hint is None, hint

