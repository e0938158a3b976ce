from otter.test_files import test_case

OK_FORMAT = False

name = "q3_kto_reference_point"
points = None
all_or_nothing = True

@test_case(points=0, hidden=False)
def test_numbers_and_not_a_known_slip(kto_z, kto_z_negative):
    from minidpo.grade import answer_digest
    assert isinstance(kto_z, (int, float)) and isinstance(kto_z_negative, (int, float)), 'set two numbers'
    slips = {'5a8973f13426': 'your z is negative: z is clamped at 0', 'bf3d35a0acfa': 'your z is a sum: it is a mean over the mismatched pairs', '4d6073ffed2e': 'your z averages the absolute values: the log-ratios keep their signs', '9893036fc978': 'your z clamps each log-ratio before the mean: the clamp applies to the mean', '10c3941dbead': 'your z clamps each log-ratio before the mean: the clamp applies to the mean'}
    key = lambda x: answer_digest(f'{round(float(x), 4) + 0.0:.4f}')
    hint = slips.get(key(kto_z)) or slips.get(key(kto_z_negative))
    assert hint is None, hint

