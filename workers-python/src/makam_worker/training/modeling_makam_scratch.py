"""makam's from-scratch text classifier: a pre-norm transformer encoder with a SentencePiece tokenizer.

This file is shipped inside every `scratch` artifact (with textprep.py), so a trained model loads
without makam installed, with torch, transformers and sentencepiece alone:

    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    model = AutoModelForSequenceClassification.from_pretrained(d, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(d, trust_remote_code=True)
    batch = tokenizer(["Seni seviyorum"], padding=True, truncation=True, max_length=256, return_tensors="pt")
    label = model.config.id2label[model(**batch).logits.argmax(-1).item()]

The tokenizer prepares raw text itself (Unicode NFC, Turkish lower case, escapes, chord lines: the
options the model was trained with, in tokenizer_config.json), then adds <s> ... </s>.

Architecture: token embeddings plus learned (or sinusoidal) positions up to max_position_embeddings,
then num_hidden_layers pre-norm blocks, x + Attn(LN(x)) and x + FFN(LN(x)), with attention through
torch.nn.functional.scaled_dot_product_attention (flash or memory-efficient kernels on CUDA), a final
LayerNorm, mean pooling over real tokens (or the first token) and a linear head.

With char_ngram_buckets > 0 (makam's char_ngram_buckets hyperparameter; 0 by default) a character
n-gram branch sits beside the subword one, as fastText: the hashed n-grams of each word
(textprep.char_ngram_ids, which textprep.encode passes as `char_ngram_ids`) are averaged by an
EmbeddingBag, layer-normalised and concatenated with the pooled transformer output before the head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from .textprep import prepare_text


class MakamScratchConfig(PretrainedConfig):
    model_type = "makam_scratch"
    char_ngram_buckets = 0  # no character n-gram branch
    char_ngram_sizes = "3-5"

    def __init__(
        self,
        vocab_size: int = 8000,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 1024,
        hidden_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        position_embedding_type: str = "learned",
        pooling: str = "mean",
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-5,
        pad_token_id: int = 0,
        char_ngram_buckets: int = 0,
        char_ngram_sizes: str = "3-5",
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.position_embedding_type = position_embedding_type
        self.pooling = pooling
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        if char_ngram_buckets:  # set only then: config.json of a model without the branch stays as it was
            self.char_ngram_buckets = char_ngram_buckets
            self.char_ngram_sizes = char_ngram_sizes
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class SelfAttention(nn.Module):
    def __init__(self, config: MakamScratchConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # mask: (b, 1, 1, t), True where a key is a real token; None when the batch has no padding,
        # which lets CUDA pick the flash kernel. No dropout on the attention weights: on CPU it
        # materialises a (b, heads, t, t) mask and doubles the step time; the block's output dropout
        # regularises instead.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, config: MakamScratchConfig) -> None:
        super().__init__()
        eps = config.layer_norm_eps
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=eps)
        self.attn = SelfAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=eps)
        self.ff = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size),
            nn.GELU(),
            nn.Linear(config.intermediate_size, config.hidden_size),
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), mask))
        return x + self.dropout(self.ff(self.norm2(x)))


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return table


class MakamScratchPreTrainedModel(PreTrainedModel):
    config_class = MakamScratchConfig
    base_model_prefix = "makam"
    main_input_name = "input_ids"

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.EmbeddingBag):  # the n-gram table: torch's default N(0, 1) would swamp the mean
            nn.init.normal_(module.weight, mean=0.0, std=std)
            with torch.no_grad():
                module.weight[0].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class MakamScratchForSequenceClassification(MakamScratchPreTrainedModel):
    def __init__(self, config: MakamScratchConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.embeddings = nn.Embedding(config.vocab_size, d, padding_idx=config.pad_token_id)
        if config.position_embedding_type == "learned":
            self.positions = nn.Embedding(config.max_position_embeddings, d)
        elif config.position_embedding_type == "sinusoidal":
            self.positions = None
            self.register_buffer("sinusoid", sinusoidal_positions(config.max_position_embeddings, d), persistent=False)
        else:
            raise ValueError(f"position_embedding_type must be 'learned' or 'sinusoidal', not {config.position_embedding_type!r}")
        self.embedding_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.head_dropout = nn.Dropout(config.hidden_dropout_prob)
        width = d
        if config.char_ngram_buckets > 0:  # id 0 pads a text's n-grams and is left out of the mean
            self.char_ngrams = nn.EmbeddingBag(config.char_ngram_buckets + 1, d, mode="mean", padding_idx=0)
            self.char_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
            width = 2 * d
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden states (batch, tokens, hidden_size), before pooling: what makam's masked-LM
        phase trains an MLM head on before fine-tuning."""
        b, t = input_ids.shape
        if t > self.config.max_position_embeddings:
            raise ValueError(f"input is {t} tokens, above max_position_embeddings={self.config.max_position_embeddings}")
        x = self.embeddings(input_ids)
        if self.positions is not None:
            x = x + self.positions(torch.arange(t, device=input_ids.device))
        else:
            x = x * math.sqrt(self.config.hidden_size) + self.sinusoid[:t].to(x.dtype)
        x = self.embedding_dropout(x)
        # No mask given means no padding: nothing to check, so no host sync on CUDA (the training loop
        # leaves the mask out of batches without padding); a given mask of all ones is dropped too.
        keep = attention_mask.bool() if attention_mask is not None else None
        # An exported graph (ONNX) cannot branch on the data: it always applies the mask.
        dense = keep is None or (not torch.compiler.is_exporting() and bool(keep.all()))
        mask = None if dense else keep[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        char_ngram_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        x = self.encode(input_ids, attention_mask)
        t = x.shape[1]
        keep = attention_mask.bool() if attention_mask is not None else None
        if self.config.pooling == "cls":
            pooled = x[:, 0]
        elif keep is None:
            pooled = x.sum(dim=1) / t
        else:
            weights = keep.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        if self.config.char_ngram_buckets > 0:
            if char_ngram_ids is None:
                raise ValueError("this model reads character n-grams: build its input with textprep.encode "
                                 "(shipped beside it), which adds char_ngram_ids")
            grams = self.char_norm(self.char_ngrams(char_ngram_ids)).to(pooled.dtype)
            pooled = torch.cat([pooled, grams], dim=-1)
        logits = self.classifier(self.head_dropout(pooled))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class MakamScratchTokenizer(SentencePieceBackend):
    """The SentencePiece model trained on the run's training split (tokenizer.model), preparing raw
    text as in training (`preprocessing`) and adding <s> ... </s>."""

    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, preprocessing: dict | None = None, char_ngrams: dict | None = None,
                 **kwargs) -> None:
        self.preprocessing = dict(preprocessing or {})
        # {"buckets", "sizes"} for a model with the n-gram branch: textprep.encode reads it. Saved only
        # then, so the tokenizer_config.json of a model without it stays as it was.
        self.char_ngrams = dict(char_ngrams) if char_ngrams else None
        if self.char_ngrams:
            kwargs["char_ngrams"] = self.char_ngrams
        kwargs.setdefault("pad_token", "<pad>")
        kwargs.setdefault("unk_token", "<unk>")
        kwargs.setdefault("bos_token", "<s>")
        kwargs.setdefault("eos_token", "</s>")
        kwargs.setdefault("cls_token", "<s>")
        kwargs.setdefault("sep_token", "</s>")
        kwargs.setdefault("special_tokens_pattern", "cls_sep")
        kwargs.setdefault("token_type_ids_pattern", "all_zeros")
        super().__init__(vocab_file=vocab_file, preprocessing=self.preprocessing, **kwargs)

    def prepare_for_tokenization(self, text: str, is_split_into_words: bool = False, **kwargs):
        return prepare_text(text, **self.preprocessing), kwargs
