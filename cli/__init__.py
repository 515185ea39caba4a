"""The command line: `scratchgpt COMMAND` and the pieces its commands share.

main.py dispatches to a module per command (train, sample, eval, look for score and inspect,
plot, interop for export and import, serve); common.py turns user errors into one line and an
exit status; flags.py holds the flags several commands spell alike; console.py, progress.py and
inspect_view.py draw on the terminal with rich. The REPL (repl/) is a front end too and reuses
common.py, flags.py, console.py, progress.py and inspect_view.py.
"""
