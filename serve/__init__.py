"""`scratchgpt serve`: the model over HTTP."""
