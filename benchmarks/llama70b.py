"""A Llama-3-70B-sized model for the benchmarks (hidden 8192, 80 layers, vocab 128256).

Built only on the meta device by mulint: no weights are ever allocated.
"""

from transformers import LlamaConfig, LlamaForCausalLM


def llama_70b(hidden_size: int = 8192):
    return LlamaForCausalLM(
        LlamaConfig(
            hidden_size=hidden_size,
            intermediate_size=28672 * hidden_size // 8192,
            num_hidden_layers=80,
            num_attention_heads=64,
            num_key_value_heads=8,
            vocab_size=128256,
            max_position_embeddings=8192,
            rope_theta=500000.0,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
