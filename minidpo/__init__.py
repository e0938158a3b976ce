"""minidpo: Direct Preference Optimization from first principles."""

__version__ = "0.2.0"  # the one place: pyproject, CITATION.cff (tested), CHANGELOG (tested) and the report read it
