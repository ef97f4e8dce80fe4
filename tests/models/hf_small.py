"""Small HF transformers models built from configs (no downloads)."""

from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


def gpt2(n_embd: int = 64):
    return GPT2LMHeadModel(GPT2Config(n_embd=n_embd, n_layer=2, n_head=4, vocab_size=128, n_positions=64,
                                      bos_token_id=0, eos_token_id=0))


def llama(hidden_size: int = 64):
    return LlamaForCausalLM(LlamaConfig(hidden_size=hidden_size, intermediate_size=3 * hidden_size,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        vocab_size=128, max_position_embeddings=64, tie_word_embeddings=False,
                                        bos_token_id=0, eos_token_id=0, pad_token_id=0))


def bert(hidden_size: int = 64):
    return BertForMaskedLM(BertConfig(hidden_size=hidden_size, intermediate_size=4 * hidden_size,
                                      num_hidden_layers=2, num_attention_heads=4, vocab_size=128,
                                      max_position_embeddings=64))


def gpt2_fixed():
    """A factory without a width argument: mulint scales the config the model carries."""
    return gpt2(64)


def vit(hidden_size: int = 64):
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(hidden_size=hidden_size, intermediate_size=4 * hidden_size,
                                               num_hidden_layers=2, num_attention_heads=4, image_size=16,
                                               patch_size=4, num_labels=5))
