"""A forecaster for tests/test_distributed.py: OccForecaster whose training draws (noise,
flow time, trajectory drop, residual frames and columns) are seeded per window, so a
window's loss does not depend on the rank or batch it lands in, and whose batch loss is
the mean of its windows' losses (each window weighted equally, as DDP's gradient average
weighs the ranks). Set ``OCCWM_TEST_LOSS_LOG=PATH`` and every rank appends
``{iter, windows: [{window, loss}]}`` lines to ``PATH.rank<r>``. Imported by the
training processes through the test config's ``custom_imports``."""
import json
import os
import zlib
from collections import defaultdict

import torch
import torch.distributed as dist
from mmengine.logging import MessageHub

from occwm.models.forecaster import OccForecaster
from occwm.registry import MODELS


@MODELS.register_module()
class PerWindowSeededForecaster(OccForecaster):

    def loss(self, occ, traj, keys=None):
        B, T = occ.shape[:2]
        parts, records = defaultdict(list), []
        for b in range(B):
            kb = keys[b * T:(b + 1) * T] if keys else None
            name = repr(kb[0]) if kb else str(b)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(zlib.crc32(name.encode()))
                losses = super().loss(occ[b:b + 1], traj[b:b + 1], kb)
            for k, v in losses.items():
                parts[k].append(v)
            records.append(dict(window=name, loss=float(sum(losses.values()).detach())))
        log = os.environ.get('OCCWM_TEST_LOSS_LOG')
        if log:
            rank = dist.get_rank() if dist.is_initialized() else 0
            it = MessageHub.get_current_instance().get_info('iter')
            with open(f'{log}.rank{rank}', 'a') as f:
                f.write(json.dumps(dict(iter=it, windows=records)) + '\n')
        return {k: torch.stack(v).mean() for k, v in parts.items()}
