from otter.test_files import test_case

OK_FORMAT = False

name = "q3_cdpo_optimum"
points = None

@test_case(points=0, hidden=False)
def test_format_and_not_a_known_slip(cdpo_optimal_h, cdpo_min_loss):
    from minidpo.grade import answer_digest
    assert all((isinstance(float(x), float) for x in (cdpo_optimal_h, cdpo_min_loss))), 'set two numbers'
    assert float(cdpo_min_loss) >= 0, 'a negative log-likelihood is never negative'
    assert float(cdpo_optimal_h) > 0, 'your margin is not positive: the labels are right more often than not'
    h_slips = {'71799149a4f9': "your margin is what you'd get without beta: where does beta enter?", 'fc57e3a6ed6e': 'your margin multiplies by beta: solve beta h = ... for h', '4cf44b19c1e2': 'your margin uses log base 10: natural log'}
    loss_slips = {'297d62f39fae': 'your loss is 0: with label noise the minimum is above 0', '8019658c8543': 'your loss is in bits (log base 2): natural log', '65f771ae97c4': 'your loss is evaluated at a margin without beta'}
    key = lambda x: answer_digest(f'{round(float(x), 4) + 0.0:.4f}')
    hint = h_slips.get(key(cdpo_optimal_h)) or loss_slips.get(key(cdpo_min_loss))
    assert hint is None, hint

