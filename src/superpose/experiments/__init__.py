"""The experiments: one module each (probe, sweep, scale with topk, reproduce's plan), on base.py's
config header and run skeleton. Each takes a validated config and a backend, never a raw model, and
writes a run folder; the command layer (:mod:`superpose.cli`) parses arguments for them."""
