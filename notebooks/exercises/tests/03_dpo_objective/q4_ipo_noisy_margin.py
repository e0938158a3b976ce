from otter.test_files import test_case

OK_FORMAT = False

name = "q4_ipo_noisy_margin"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_are_numbers_and_not_a_known_slip(ipo_noisy_margin, ipo_noisy_min_loss):
    from minidpo.grade import answer_digest
    assert isinstance(ipo_noisy_margin, (int, float)) and isinstance(ipo_noisy_min_loss, (int, float)), 'set two numbers'
    assert ipo_noisy_min_loss >= 0, 'an expected squared loss is never negative'
    margin_slips = {'64e4b892473f': 'your margin is the noise-free target 1 / (2 beta): the flipped labels (probability 1 - p) pull the other way', '49fea1e6bb5d': 'your margin uses a target of 1 / beta: check the factor 2', '258aeaf41ce0': 'your margin uses a target of beta / 2: check where beta goes', 'c833a8bb2d4a': 'your margin is p / (2 beta): the label b > a pulls towards -1 / (2 beta), not 0', '297d62f39fae': 'your margin is 0: the labels are not 50/50'}
    loss_slips = {'297d62f39fae': 'your expected loss is 0: with noisy labels no margin fits both labels', 'bf3d35a0acfa': 'your loss is the expected loss at the noise-free target, not at the minimiser', 'd04e34891089': 'your loss is p (1 - p): the expected loss also carries the scale of the target gap', '9f2db870dc22': 'your loss uses a target of 1 / beta: check the factor 2'}
    key = lambda x: answer_digest(f'{round(float(x), 4) + 0.0:.4f}')
    hint = margin_slips.get(key(ipo_noisy_margin)) or loss_slips.get(key(ipo_noisy_min_loss))
    assert hint is None, hint

