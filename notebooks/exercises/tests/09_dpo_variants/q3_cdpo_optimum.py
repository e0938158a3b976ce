from otter.test_files import test_case

OK_FORMAT = False

name = "q3_cdpo_optimum"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_format(cdpo_optimal_h, cdpo_min_loss):
    assert all((isinstance(float(x), float) for x in (cdpo_optimal_h, cdpo_min_loss))), 'set two numbers'

