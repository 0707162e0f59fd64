"""Models behind one narrow interface: a Hugging Face causal LM plus its tokenizer and provenance.

``load_model`` accepts an embedded model name (``superpose models``), a GGUF file, a local Hugging
Face folder, or a hub id.
"""

from superpose.models.loading import LoadedModel, load_model
from superpose.models.registry import EMBEDDED_MODELS, EmbeddedModel, cache_dir

__all__ = ["LoadedModel", "load_model", "EMBEDDED_MODELS", "EmbeddedModel", "cache_dir"]
