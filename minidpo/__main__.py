"""`python -m minidpo run|frontier|figures`: the experiments' command line (`minidpo.experiments.cli`)."""

import sys

from minidpo.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
