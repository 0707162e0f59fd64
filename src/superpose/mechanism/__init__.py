"""Where superposition forms and what carries it, split by the K answers of a mixed prompt.

``lens`` (each layer's residual stream read through the output layer), ``attribution`` (leave one
in-context example out), ``heads`` (mean-ablate each attention head; induction scores), ``figures``.
They use the transformers backend's public ``residual`` and ``heads`` capabilities only.
"""
