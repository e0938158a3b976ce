from otter.test_files import test_case

OK_FORMAT = False

name = "q3_kto_reference_point"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_numbers(kto_z, kto_z_negative):
    assert isinstance(kto_z, (int, float)) and isinstance(kto_z_negative, (int, float)), 'set two numbers'

