from otter.test_files import test_case

OK_FORMAT = False

name = "q2_perplexity"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_are_numbers(perplexity, uniform_nll):
    assert isinstance(perplexity, (int, float)) and isinstance(uniform_nll, (int, float)), 'set two floats'
    assert perplexity >= 1, 'a perplexity is at least 1'

