"""`python -m scratchgpt.train`, and so `torchrun -m scratchgpt.train`: the `scratchgpt train` command
(cli/train.py), run as a module so that torchrun can launch one process per rank."""

from .cli.train import cli

if __name__ == "__main__":
    raise SystemExit(cli())
