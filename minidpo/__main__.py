"""`python -m minidpo run|frontier|family|variants|figures|report`: the experiments' command line
(`minidpo.experiments.cli`).

    python -m minidpo run [--profile smoke|cpu|gpu] [--set dpo.learning_rate=1e-6 ...]   notebooks 04-07
    python -m minidpo frontier [--set kl_coefs=0.1,0.2 ...]                                notebook 08
    python -m minidpo variants [--set dpo.learning_rate=... ...]                           notebook 09
    python -m minidpo family [--set seeds=0,1 ...]                                         notebook 10
    python -m minidpo figures | report [--pdf]                                             figures, the report
"""

import sys

from minidpo.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
