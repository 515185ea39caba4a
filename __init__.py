"""ScratchGPT: a from-scratch GPT you train on your own text and talk to in a terminal."""

__version__ = "0.1.0"
