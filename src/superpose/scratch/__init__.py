"""Small transformers trained from scratch on one task per sequence (the study's second finding).

* :mod:`~superpose.scratch.tokenizer` -- a character tokenizer (printable ASCII, space, newline).
* :mod:`~superpose.scratch.data` -- single-task training sequences with answer-only loss masks.
* :mod:`~superpose.scratch.model` -- a Hugging Face Llama or GPT-2 built from a small config.
* :mod:`~superpose.scratch.recipe` -- the training recipe (YAML), its schedule and resume rule.
* :mod:`~superpose.scratch.step` -- one optimizer step (AdamW on the answer tokens' loss).
* :mod:`~superpose.scratch.checkpoint` -- checkpoints (exact resume) and the exported model.
* :mod:`~superpose.scratch.train` -- the training loop, read top to bottom, in a run folder that
  :func:`superpose.experiments.train.run_train` opens like every kind's.
* :mod:`~superpose.scratch.diagnose` -- answer loss by example index: is a model learning in context?

The trained model is an ordinary Hugging Face folder, so the probe, the scorer and the λ sweep
(:mod:`superpose.experiments.sweep`) use it unchanged.
"""

from superpose.scratch.tokenizer import CHARACTERS, SPECIAL_TOKENS, build_tokenizer, char_vocab
from superpose.scratch.data import TrainingSequence, make_batch, make_sequence
from superpose.scratch.model import ModelConfig, build_model
from superpose.scratch.train import TrainConfig, TrainResult, load_train_config, train

__all__ = ["CHARACTERS", "SPECIAL_TOKENS", "build_tokenizer", "char_vocab", "TrainingSequence",
           "make_batch", "make_sequence", "ModelConfig", "build_model", "TrainConfig", "TrainResult",
           "load_train_config", "train"]
