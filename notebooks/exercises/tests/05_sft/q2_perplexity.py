from otter.test_files import test_case

OK_FORMAT = False

name = "q2_perplexity"
points = None

@test_case(points=0, hidden=False)
def test_are_numbers_and_not_a_known_slip(perplexity, uniform_nll):
    from minidpo.grade import answer_digest
    assert isinstance(perplexity, (int, float)) and isinstance(uniform_nll, (int, float)), 'set two floats'
    assert perplexity >= 1, 'a perplexity is at least 1'
    assert uniform_nll >= 0, 'a negative log-likelihood is never negative'
    perplexity_slips = {'90f7b2dc8348': 'your perplexity uses base 2: the NLL is in nats', 'c227bf714196': 'your perplexity uses base 10: the NLL is in nats', '4ccdec034b93': 'your perplexity is the NLL itself: how is a perplexity made from it?'}
    nll_slips = {'3c05d2794f40': 'your NLL is in bits (log base 2): the exercise asks for nats', 'f854a96225c4': 'your NLL uses log base 10: the exercise asks for nats', 'f7649727ee61': 'your value is the probability of a token, not its negative log-likelihood', 'e4a461125d6a': 'your value is the number of outputs, not the negative log-likelihood of one token'}
    key = lambda x: answer_digest(f'{round(float(x), 4) + 0.0:.4f}')
    hint = perplexity_slips.get(key(perplexity)) or nll_slips.get(key(uniform_nll))
    assert hint is None, hint

