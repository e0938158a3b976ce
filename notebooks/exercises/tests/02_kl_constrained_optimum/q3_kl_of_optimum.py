from otter.test_files import test_case

OK_FORMAT = False

name = "q3_kl_of_optimum"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_is_a_nonnegative_number_and_not_a_known_slip(kl_optimum_nats):
    from minidpo.grade import answer_digest
    assert isinstance(kl_optimum_nats, (int, float)), 'set a Python float (use float(...) on a tensor)'
    assert kl_optimum_nats >= 0, 'a KL divergence is never negative'
    slips = {'6d494361433f': 'your KL is in bits (log base 2): the exercise asks for nats (natural log)', 'eb77b8843f06': 'your KL uses log base 10: the exercise asks for nats (natural log)', '32e5b34b37c1': 'your value is KL(pi_ref || pi*): the arguments are the other way round', 'f3499b6fd237': 'your pi* uses exp(beta r): how does beta enter the exponent?', '3d7eab926a4f': 'your pi* leaves out pi_ref: the optimum reweights the reference'}
    hint = slips.get(answer_digest(f'{round(float(kl_optimum_nats), 4) + 0.0:.4f}'))
    assert hint is None, hint

