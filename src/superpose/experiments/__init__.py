"""One module per experiment; each has a pydantic config, a run function and a CLI parser."""
