"""Training: the run's config, the pipeline that carries it out, and the plain loop beneath.

config.py       TrainConfig (every setting once: flags, recipe keys, --help defaults, saved config)
run.py          train(config) for a run, fine_tune(...) for the REPL's /train; run files and signals
loop.py         train_loop, Schedule, make_optimizer, estimate_loss: no files, no terminal
distill.py      learning toward teachers' next-token distributions (--teacher)
muon.py         the Muon optimizer for the blocks' matrices (--optimizer muon)
distributed.py  torchrun: process group, DDP, micro-batches per rank, one agreed stop
"""

from __future__ import annotations

from .config import TrainConfig
from .run import FineTuneReport, fine_tune, train

__all__ = ["FineTuneReport", "TrainConfig", "fine_tune", "train"]
