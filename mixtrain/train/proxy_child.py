"""The child process of a proxy run (train/chameleon_proxy.py's train_proxy under torchrun/srun).

Place in the flow: rank 0 of a multi-process run -> `python -m mixtrain.train.proxy_child SPEC.json`
(the proxy's TrainConfig as JSON, launcher variables removed from its environment) -> train/run.py's
`train` on one device -> the proxy's run directory, which rank 0 then embeds the domains with.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mixtrain.train.chameleon_proxy import config_from_dict
from mixtrain.train.run import train

if __name__ == "__main__":
    train(config_from_dict(json.loads(Path(sys.argv[1]).read_text())))
