"""A small Hugging Face causal LM for the character tokenizer, initialised from a seed.

Two architectures, both plain ``transformers`` classes so that every scorer, hook and backend
serves them unchanged:

* ``llama`` (the default): RMSNorm, SwiGLU MLP, rotary positions -- relative offsets only, so
  nothing in the residual stream says where a token sits within its line.
* ``gpt2``: LayerNorm, GELU MLP, learned absolute position embeddings (GPT-2, as in nanoGPT) --
  every token carries its position, hence its column in the fixed-width lines of ret_k.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from superpose.scratch.tokenizer import SPECIAL_TOKENS, char_vocab


class ModelConfig(BaseModel):
    """Size of the transformer (the study's recipe: 6 layers, width 384, 6 heads, MLP 1536)."""

    model_config = ConfigDict(extra="forbid")

    architecture: Literal["llama", "gpt2"] = "llama"  # see the module docstring
    n_layers: int = Field(6, ge=1)
    d_model: int = Field(384, ge=8)
    n_heads: int = Field(6, ge=1)
    d_mlp: int = Field(1536, ge=8)
    max_position_embeddings: int = Field(2048, ge=16)  # must cover the longest training sequence
    rope_theta: float = Field(10000.0, gt=0)  # llama only
    init_std: float = Field(0.02, gt=0)
    # Dropout on attention weights while training. A model trained on one task per sequence can
    # read the task off the LAST example alone; dropping attention weights makes leaning on one
    # position costly. (Measured in docs/scratch.md: at 0.1 the model stops copying the last
    # example, but then picks one task for the whole prompt rather than splitting.)
    attention_dropout: float = Field(0.0, ge=0, lt=1)
    # ARCHITECTURE CHANGE (not the study's): add a learned embedding of each character's column in
    # its line (0 .. column_embedding-1, capped) to the token embedding, keeping the global rotary
    # positions (superpose.models.columns). 0: off, the study's architecture. llama only.
    column_embedding: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ModelConfig":
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        if self.architecture == "llama" and (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head width d_model/n_heads={self.d_model // self.n_heads} must be even (rotary)")
        if self.column_embedding and self.architecture != "llama":
            raise ValueError("column_embedding: the column signal is built for architecture llama "
                             "(gpt2 already has learned absolute positions)")
        return self


def hf_config(cfg: ModelConfig):
    """The ``transformers`` config (``LlamaConfig`` or ``GPT2Config``) of a character-level model."""
    from transformers import GPT2Config, LlamaConfig

    if cfg.architecture == "gpt2":
        return GPT2Config(
            vocab_size=len(char_vocab()), n_embd=cfg.d_model, n_inner=cfg.d_mlp, n_layer=cfg.n_layers,
            n_head=cfg.n_heads, n_positions=cfg.max_position_embeddings,
            initializer_range=cfg.init_std, tie_word_embeddings=False,
            pad_token_id=SPECIAL_TOKENS.index("<pad>"), bos_token_id=None, eos_token_id=None,
            attn_pdrop=cfg.attention_dropout, resid_pdrop=0.0, embd_pdrop=0.0,
        )
    extra = {}
    if cfg.column_embedding:  # labelled in config.json: every loader must attach it (superpose.models.columns)
        from superpose.models.columns import CONFIG_KEY, NEWLINE_KEY

        extra = {CONFIG_KEY: cfg.column_embedding, NEWLINE_KEY: char_vocab()["\n"]}
    return LlamaConfig(
        **extra,
        vocab_size=len(char_vocab()), hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads, max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta, initializer_range=cfg.init_std, tie_word_embeddings=False,
        pad_token_id=SPECIAL_TOKENS.index("<pad>"), bos_token_id=None, eos_token_id=None,
        attention_bias=False, mlp_bias=False, attention_dropout=cfg.attention_dropout,
    )


def build_model(cfg: ModelConfig, generator: torch.Generator):
    """A freshly initialised causal LM; weights come only from ``generator``."""
    from transformers import AutoModelForCausalLM

    from superpose.models.columns import attach_columns

    model = AutoModelForCausalLM.from_config(hf_config(cfg))
    attach_columns(model)  # the architecture change, when the config asks for it
    # Re-draw every weight from the passed generator, so the init never touches torch's global RNG
    # and one seed always gives one model (in named_parameters order, which is fixed by the config).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):  # gpt2's linear and LayerNorm biases
                p.zero_()
            elif p.ndim == 1:  # norm gains
                p.fill_(1.0)
            else:
                p.normal_(0.0, cfg.init_std, generator=generator)
    return model
