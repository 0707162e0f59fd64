"""A character tokenizer: one token per character of printable ASCII, space and newline.

It is a ``transformers`` fast tokenizer (a ``tokenizers`` word-level model over single characters),
so ``AutoTokenizer.from_pretrained(folder)`` loads it next to the model. It adds no BOS or EOS: the
scorer needs ``tokenizer(prompt)`` to be an exact prefix of ``tokenizer(prompt + answer)``, which a
one-token-per-character split guarantees.
"""

from __future__ import annotations

PAD, UNK = "<pad>", "<unk>"
SPECIAL_TOKENS = (PAD, UNK)  # pad for batching mixed-length sequences; unk for anything else
CHARACTERS = tuple(chr(c) for c in range(32, 127)) + ("\n",)  # printable ASCII incl. space, newline


def char_vocab() -> dict[str, int]:
    """Token -> id: the specials first (pad = 0), then every character."""
    return {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` that maps each character to one token and decodes by joining."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(char_vocab(), unk_token=UNK))
    # Split into single characters; [\s\S] (not ".") so that newlines are split off too.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # join tokens with nothing between them (the default adds spaces)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, unk_token=UNK,
                                   model_max_length=1 << 30)
