"""The low-level pieces every layer may import: errors, bounds, text for messages, paths, atomic
files, interrupts, durations and the cores this process may use. Nothing here imports torch at
import time, argparse helpers or rich."""
