"""Training: the run's config, the pipeline that carries it out, and the plain loop beneath.

config.py       TrainConfig (every setting once: flags, recipe keys, --help defaults, saved config)
run.py          train(config): a run composed of the parts below, its RunState and RunSummary
start.py        what a run starts from: corpus, model (resumed, fine-tuned or new), teachers
run_files.py    a run's files, what may replace them, the save order (RunWriter), the one-owner RunLock
pacer.py        step and evaluation times: the ETA, and the end that fits --max-minutes
loggers.py      where a run's metrics go: its JSONL file, W&B and TensorBoard on request
budget.py       how long steps take before any runs; steps_that_fit a time budget
finetune.py     fine_tune(...): the REPL's /train, in memory
loop.py         train_loop, Schedule, make_optimizer, estimate_loss: no files, no terminal
distill.py      learning toward teachers' next-token distributions (--teacher)
muon.py         the Muon optimizer for the blocks' matrices (--optimizer muon)
distributed.py  torchrun: process group, DDP, micro-batches per rank, one agreed stop
"""
