"""The experiments: one module per kind of run (probe, sweep, scale with topk, vectors, construct,
mechanism; reproduce's plan), each with one runner ``run_<kind>(config, *, root, resume, backend,
progress)`` on base.py's config header and ``open_run``. Each takes a validated config and a backend,
never a raw model, and writes a run folder; the command layer (:mod:`superpose.cli`) parses arguments
for them."""
