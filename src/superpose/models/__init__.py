"""Where model weights come from: the embedded models (pip packages), local files and folders, hub ids.

Loading is the backends' job (:mod:`superpose.backends`); this package finds, checks and converts
weights: :func:`~superpose.models.loading.model_source` turns any model reference into a folder or hub
id, converting a GGUF file once into a cached folder.
"""

from superpose.models.registry import EMBEDDED_MODELS, EmbeddedModel, cache_dir

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "cache_dir"]
