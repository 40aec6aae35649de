"""A tiny random Llama with a real tokenizer and chat template, built offline in a test's
tmp folder (never the hub): the test double for every model-loading backend."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = ["recommend", "movies", "like", "toy", "story", "heat", "fargo", "star", "wars", "the", "a", "of",
         "and", "1", "2", "3", "4", "5", ".", ",", ":", "user", "assistant", "system", "you", "are",
         "helpful", "titles", "list", "watched"]
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer(chat_template: str | None = CHAT_TEMPLATE, with_pad: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Like Llama's tokenizer, plain encoding prepends BOS: templated strings must not get a second.
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="<|im_end|>",
                                  unk_token="<unk>", pad_token="<pad>" if with_pad else None,
                                  additional_special_tokens=["<|im_start|>", "</s>"])
    if chat_template:
        tok.chat_template = chat_template
    return tok


def build_tiny_model(folder: Path, *, chat_template: str | None = CHAT_TEMPLATE, with_pad: bool = True,
                     max_positions: int = 256, seed: int = 0) -> Path:
    """Save a ~50k-parameter random LlamaForCausalLM plus tokenizer into `folder`."""
    return _save_random_llama(build_tokenizer(chat_template, with_pad), folder, max_positions, seed)


def _save_random_llama(tok, folder: Path, max_positions: int, seed: int) -> Path:
    """A seeded random tiny LlamaForCausalLM sized to `tok`'s vocabulary, saved with it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_bpe_model(folder: Path, corpus: list[str], *, vocab_size: int = 400,
                    max_positions: int = 2048, seed: int = 0) -> Path:
    """The same tiny random Llama with a byte-level BPE tokenizer trained on `corpus` (so every
    string can be spelled, as with real models: what constrained decoding needs)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="<|im_end|>",
                                  unk_token="<unk>", pad_token="<pad>",
                                  additional_special_tokens=["<|im_start|>", "</s>"])
    tok.chat_template = CHAT_TEMPLATE
    return _save_random_llama(tok, folder, max_positions, seed)
