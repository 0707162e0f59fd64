"""Task vectors (the study's Section 6): extract, choose a layer, project, interpolate, patch, steer.

Works on any Hugging Face causal LM the toolkit loads (GGUF and scratch models included) through
plain PyTorch forward hooks on the decoder layers (:mod:`superpose.backends.residual`), reached through
the backend's public methods (:class:`~superpose.backends.hf.HFBackend`).
"""

from superpose.backends.residual import Patch, capture_residuals, find_decoder_layers, n_layers, patching, resid_name
from superpose.vectors.extract import Group, VectorStore, default_groups, extract_prompts, make_group
from superpose.vectors.interpolate import interpolation_vectors, lambda_grid
from superpose.vectors.patched import patched_logprobs
from superpose.vectors.queries import Query, zero_shot_queries

__all__ = ["Group", "Patch", "Query", "VectorStore", "capture_residuals", "default_groups", "extract_prompts",
           "find_decoder_layers", "interpolation_vectors", "lambda_grid", "make_group", "n_layers",
           "patched_logprobs", "patching", "resid_name", "zero_shot_queries"]
