"""`scratchgpt-repl`: talk to a model in a terminal.

app.py is the prompt_toolkit application (the prompt, streaming replies, piped use; keys.py its key
bindings); session.py the model in use and its settings; conversation.py the token ids said so far;
commands.py the slash commands as one table, arguments.py what each command's argument may be,
completion.py what Tab offers, inspect_commands.py the views inside the model (/probs ... /lens).
The terminal pieces it shares with the command line (console, flags, progress, inspect_view) are cli/'s.
"""
