"""Small configs of popular HF transformers architectures, built without downloads.

Every factory takes no argument and returns a model carrying its config, the way users hand mulint
an HF model: mulint scales the config's width field (and the fields that grow with it) itself.
Sizes are tiny (width 64, 2 layers, vocab 128) so the sweep runs in minutes on a CPU.
"""

from __future__ import annotations

import transformers as hf

VOCAB, POSITIONS, LAYERS, HEADS = 128, 64, 2, 4
TOKENS = dict(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
DECODER = dict(TOKENS, max_position_embeddings=POSITIONS, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
               hidden_size=64, intermediate_size=192, tie_word_embeddings=False)
ENCODER = dict(TOKENS, max_position_embeddings=POSITIONS, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
               hidden_size=64, intermediate_size=256)
SEQ2SEQ = dict(TOKENS, max_position_embeddings=POSITIONS, d_model=64, encoder_layers=LAYERS, decoder_layers=LAYERS,
               encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=256, decoder_ffn_dim=256,
               decoder_start_token_id=0)
VISION = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
              image_size=16, patch_size=4, num_channels=3, num_labels=5)


# Decoders ------------------------------------------------------------------------------------

def gpt2():
    return hf.GPT2LMHeadModel(hf.GPT2Config(n_embd=64, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS, **TOKENS))


def gpt_neox():
    return hf.GPTNeoXForCausalLM(hf.GPTNeoXConfig(**{**DECODER, "intermediate_size": 256}))


def gptj():
    return hf.GPTJForCausalLM(hf.GPTJConfig(n_embd=64, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS,
                                            rotary_dim=8, **TOKENS))


def llama():
    return hf.LlamaForCausalLM(hf.LlamaConfig(**DECODER, num_key_value_heads=2))


def mistral():
    return hf.MistralForCausalLM(hf.MistralConfig(**DECODER, num_key_value_heads=2, sliding_window=None))


def mixtral():
    return hf.MixtralForCausalLM(hf.MixtralConfig(**DECODER, num_key_value_heads=2, num_local_experts=4,
                                                  num_experts_per_tok=2, sliding_window=None))


def qwen2():
    return hf.Qwen2ForCausalLM(hf.Qwen2Config(**DECODER, num_key_value_heads=2))


def qwen3():
    return hf.Qwen3ForCausalLM(hf.Qwen3Config(**DECODER, num_key_value_heads=2, head_dim=16))


def phi():
    return hf.PhiForCausalLM(hf.PhiConfig(**{**DECODER, "intermediate_size": 256}))


def phi3():
    return hf.Phi3ForCausalLM(hf.Phi3Config(**DECODER, num_key_value_heads=2))


def gemma():
    return hf.GemmaForCausalLM(hf.GemmaConfig(**{**DECODER, "tie_word_embeddings": True}, num_key_value_heads=2,
                                              head_dim=16))


def gemma2():
    return hf.Gemma2ForCausalLM(hf.Gemma2Config(**{**DECODER, "tie_word_embeddings": True}, num_key_value_heads=2,
                                                head_dim=16, query_pre_attn_scalar=16, sliding_window=POSITIONS))


def falcon():
    return hf.FalconForCausalLM(hf.FalconConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=LAYERS,
                                                num_attention_heads=HEADS, bos_token_id=0, eos_token_id=0,
                                                max_position_embeddings=POSITIONS))


def opt():
    return hf.OPTForCausalLM(hf.OPTConfig(hidden_size=64, ffn_dim=256, word_embed_proj_dim=64,
                                          num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                          max_position_embeddings=POSITIONS, **TOKENS))


def bloom():
    return hf.BloomForCausalLM(hf.BloomConfig(hidden_size=64, n_layer=LAYERS, n_head=HEADS, **TOKENS))


# Encoders ------------------------------------------------------------------------------------

def bert():
    return hf.BertForMaskedLM(hf.BertConfig(**ENCODER))


def roberta():
    return hf.RobertaForMaskedLM(hf.RobertaConfig(**{**ENCODER, "pad_token_id": 1,
                                                     "max_position_embeddings": POSITIONS + 2}))


def distilbert():
    return hf.DistilBertForMaskedLM(hf.DistilBertConfig(dim=64, hidden_dim=256, n_layers=LAYERS, n_heads=HEADS,
                                                        vocab_size=VOCAB, max_position_embeddings=POSITIONS,
                                                        pad_token_id=0))


def electra():
    return hf.ElectraForMaskedLM(hf.ElectraConfig(**ENCODER, embedding_size=64))


def albert():
    return hf.AlbertForMaskedLM(hf.AlbertConfig(**ENCODER, embedding_size=32))


def deberta_v2():
    return hf.DebertaV2ForMaskedLM(hf.DebertaV2Config(**ENCODER, position_buckets=16, max_relative_positions=32))


# Encoder-decoders ----------------------------------------------------------------------------

def t5():
    return hf.T5ForConditionalGeneration(hf.T5Config(d_model=64, d_kv=16, d_ff=256, num_layers=LAYERS,
                                                     num_heads=HEADS, decoder_start_token_id=0, **TOKENS))


def bart():
    return hf.BartForConditionalGeneration(hf.BartConfig(**SEQ2SEQ))


def marian():
    return hf.MarianMTModel(hf.MarianConfig(**SEQ2SEQ))


def whisper():
    return hf.WhisperForConditionalGeneration(hf.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=16, d_model=64, encoder_layers=LAYERS, decoder_layers=LAYERS,
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=256, decoder_ffn_dim=256,
        max_source_positions=16, max_target_positions=POSITIONS, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        decoder_start_token_id=0))


# Vision --------------------------------------------------------------------------------------

def vit():
    return hf.ViTForImageClassification(hf.ViTConfig(**VISION))


def deit():
    return hf.DeiTForImageClassification(hf.DeiTConfig(**VISION))


def swin():
    return hf.SwinForImageClassification(hf.SwinConfig(image_size=16, patch_size=2, embed_dim=32, depths=[1, 1],
                                                       num_heads=[2, 4], window_size=4, num_labels=5))


def convnext():
    return hf.ConvNextForImageClassification(hf.ConvNextConfig(num_stages=2, hidden_sizes=[32, 64], depths=[1, 1], num_labels=5,
                                                               image_size=16))


def clip_text():
    return hf.CLIPTextModelWithProjection(hf.CLIPTextConfig(**{**ENCODER, "projection_dim": 32}))


def clip_vision():
    return hf.CLIPVisionModelWithProjection(hf.CLIPVisionConfig(**{**VISION, "projection_dim": 32}))


# name -> (factory, family)
ZOO = {
    "gpt2": (gpt2, "decoder"), "gpt_neox": (gpt_neox, "decoder"), "gptj": (gptj, "decoder"),
    "llama": (llama, "decoder"), "mistral": (mistral, "decoder"), "mixtral": (mixtral, "decoder"),
    "qwen2": (qwen2, "decoder"), "qwen3": (qwen3, "decoder"), "phi": (phi, "decoder"), "phi3": (phi3, "decoder"),
    "gemma": (gemma, "decoder"), "gemma2": (gemma2, "decoder"), "falcon": (falcon, "decoder"),
    "opt": (opt, "decoder"), "bloom": (bloom, "decoder"),
    "bert": (bert, "encoder"), "roberta": (roberta, "encoder"), "distilbert": (distilbert, "encoder"),
    "electra": (electra, "encoder"), "albert": (albert, "encoder"), "deberta_v2": (deberta_v2, "encoder"),
    "t5": (t5, "encoder-decoder"), "bart": (bart, "encoder-decoder"), "marian": (marian, "encoder-decoder"),
    "whisper": (whisper, "encoder-decoder"),
    "vit": (vit, "vision"), "deit": (deit, "vision"), "swin": (swin, "vision"), "convnext": (convnext, "vision-conv"),
    "clip_text": (clip_text, "encoder"), "clip_vision": (clip_vision, "vision"),
}

# Where an architecture's findings genuinely differ from the SP trio every HF model gets
# (MU101 constant-std hidden init, MU102 SP readout, MU201 1/sqrt(head_dim) attention), and why.
DIFFERENCES = {
    "t5": {
        "-MU101": "hidden weights start at std ∝ d_model^-½ (d_ff^-½ for wo): µP's hidden init",
        "+MU104": "the query starts at (d_model·d_kv)^-½: the 1/sqrt(d_kv) T5 leaves out of its logits is "
                  "folded into the query init, which decays faster than fan_in^-½",
        # MU201 stays: unscaled logits (scale 1) are further from 1/head_dim than SP's 1/sqrt(head_dim).
    },
    "clip_text": {"-MU101": "CLIP initialises q/k/v/out and fc1/fc2 with std ∝ width^-½ (× a depth factor)"},
    "clip_vision": {"-MU101": "CLIP initialises q/k/v/out and fc1/fc2 with std ∝ width^-½ (× a depth factor)"},
    "convnext": {"-MU201": "a conv net: no attention"},
    "gemma": {"+MU103": "the embedding's output is multiplied by sqrt(hidden_size) (a 0-dim buffer): the "
                        "input layer's effective init grows with width"},
    "gemma2": {"+MU103": "the embedding's output is multiplied by sqrt(hidden_size) (a 0-dim buffer): the "
                         "input layer's effective init grows with width"},
}
