# From cat-state/nanoGPT-mup (a µP fork of karpathy/nanoGPT, MIT licence), model.py at commit
# 94ef7bdde6b9a81494a98e6e52eb4f0811a98ba7, and the learning-rate loop of its train.py. Trimmed to the
# model and its optimizer setup (from_pretrained, estimate_mfu and generate left out); `make_model`
# and `make_optimizer` do what train.py does for one width.
"""
Full definition of a GPT Language Model, all of it in this single file.
References:
1) the official GPT-2 TensorFlow implementation released by OpenAI:
https://github.com/openai/gpt-2/blob/master/src/model.py
2) huggingface/transformers PyTorch implementation:
https://github.com/huggingface/transformers/blob/main/src/transformers/models/gpt2/modeling_gpt2.py
"""

import math
import inspect
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

class LayerNorm(nn.Module):
    """ LayerNorm but with an optional bias. PyTorch doesn't support simply bias=False """

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)

class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # key, query, value projections for all heads, but in a batch
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        # output projection
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        # mup
        self.use_mup = config.use_mup
        # regularization
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        # flash attention make GPU go brrrrr but support is only in PyTorch >= 2.0
        self.flash = hasattr(torch.nn.functional, 'scaled_dot_product_attention')
        if not self.flash:
            print("WARNING: using slow attention. Flash Attention requires PyTorch >= 2.0")
            # causal mask to ensure that attention is only applied to the left in the input sequence
            self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                                        .view(1, 1, config.block_size, config.block_size))

    def forward(self, x):
        B, T, C = x.size() # batch size, sequence length, embedding dimensionality (n_embd)

        # calculate query, key, values for all heads in batch and move head forward to be the batch dim
        q, k, v  = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) # (B, nh, T, hs)

        # causal self-attention; Self-attend: (B, nh, T, hs) x (B, nh, hs, T) -> (B, nh, T, T)
        if self.flash:
            # efficient attention using Flash Attention CUDA kernels
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True)
        else:
            # manual implementation of attention
            if self.use_mup:
                # If we're using mup, divide by d instead of sqrt(d) to account for correlation between Q and K that emerges during training.
                att = (q @ k.transpose(-2, -1)) * (1.0 / k.size(-1))
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:,:,:T,:T] == 0, float('-inf'))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C) # re-assemble all head outputs side by side

        # output projection
        y = self.resid_dropout(self.c_proj(y))
        return y

class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc    = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu    = nn.GELU()
        self.c_proj  = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        if config.use_mup:
            # TODO: remove these and sanity check
            mup_init_std = config.init_std / math.sqrt(config.mup_width_mult)
            # Reinitialize weights for c_fc
            nn.init.normal_(self.c_fc.weight, mean=0.0, std=mup_init_std)
            # Reinitialize weights for c_proj
            nn.init.normal_(self.c_proj.weight, mean=0.0, std=mup_init_std)

    def forward(self, x):
        x = self.c_fc(x)
        x = self.gelu(x)
        x = self.c_proj(x)
        x = self.dropout(x)
        return x

class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x

@dataclass
class GPTConfig:
    # data settings
    block_size: int = 1024
    vocab_size: int = 50304 # GPT-2 vocab_size of 50257, padded up to nearest multiple of 64 for efficiency. See (https://arxiv.org/abs/2401.14489) for a deep dive on why this is useful.

    # model settings
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True # True: bias in Linears and LayerNorms, like GPT-2. False: a bit better and faster

    # mup settings
    use_mup: bool = False
    init_std: float = 0.02
    mup_width_mult: float = 1.0
    mup_embedding_mult: float = None
    mup_output_logit_multiplier: float = None

class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        assert config.vocab_size is not None
        assert config.block_size is not None
        self.config = config

        self.activation_sizes = {}


        self.transformer = nn.ModuleDict(dict(
            wte = nn.Embedding(config.vocab_size, config.n_embd),
            wpe = nn.Embedding(config.block_size, config.n_embd),
            drop = nn.Dropout(config.dropout),
            h = nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f = LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # with weight tying when using torch.compile() some warnings get generated:
        # "UserWarning: functional_call was passed multiple values for tied weights.
        # This behavior is deprecated and will be an error in future versions"
        # not 100% sure what this is, so far seems to be harmless. TODO investigate
        self.transformer.wte.weight = self.lm_head.weight # https://paperswithcode.com/method/weight-tying

        # mup
        self.use_mup = config.use_mup
        self.mup_width_mult = config.mup_width_mult
        self.mup_embedding_mult = config.mup_embedding_mult if hasattr(config, 'mup_embedding_mult') else None
        self.mup_output_logit_multiplier = config.mup_output_logit_multiplier if hasattr(config, 'mup_output_logit_multiplier') else None

        # init all weights
        self.apply(self._init_weights)
        # apply special scaled init to the residual projections, per GPT-2 paper
        for pn, p in self.named_parameters():
            if pn.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=config.init_std/math.sqrt(2 * config.n_layer))
            if config.use_mup:
                # Update hidden initialization variance to 1/sqrt(m_d)
                if any(n in pn for n in ['c_attn', 'c_proj', 'c_fc']):
                    mup_init_std = config.init_std / math.sqrt(config.mup_width_mult)
                    torch.nn.init.normal_(p, mean=0.0, std=mup_init_std)
                elif any(n in pn for n in ['c_proj']):
                    mup_init_std = config.init_std / math.sqrt(2 * config.n_layer * config.mup_width_mult)
                    torch.nn.init.normal_(p, mean=0.0, std=mup_init_std)

        self._add_activation_hooks()

        # report number of parameters
        print("number of parameters: %.2fM" % (self.get_num_params()/1e6,))

    def _add_activation_hooks(self):
        def hook_fn(name):
            def forward_hook(module, input, output):
                self.activation_sizes[name] = output.abs().mean().item()
            return forward_hook
        # Add hooks to embedding layers
        self.transformer.wte.register_forward_hook(hook_fn('token_embedding'))
        self.transformer.wpe.register_forward_hook(hook_fn('position_embedding'))

        # Add hooks to all transformer blocks
        for i, block in enumerate(self.transformer.h):
            block.ln_1.register_forward_hook(hook_fn(f'block_{i}_ln_1'))
            block.attn.register_forward_hook(hook_fn(f'block_{i}_attn'))
            block.ln_2.register_forward_hook(hook_fn(f'block_{i}_ln_2'))
            block.mlp.register_forward_hook(hook_fn(f'block_{i}_mlp'))

        # Add hook to final layer norm
        self.transformer.ln_f.register_forward_hook(hook_fn('final_ln'))

        # Add hook to language model head
        self.lm_head.register_forward_hook(hook_fn('lm_head'))

    def get_num_params(self, non_embedding=True):
        """
        Return the number of parameters in the model.
        For non-embedding count (default), the position embeddings get subtracted.
        The token embeddings would too, except due to the parameter sharing these
        params are actually used as weights in the final layer, so we include them.
        """
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)

    def forward(self, idx, targets=None):
        self.activation_sizes.clear()
        device = idx.device
        b, t = idx.size()
        assert t <= self.config.block_size, f"Cannot forward sequence of length {t}, block size is only {self.config.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=device) # shape (t)

        # forward the GPT model itself
        tok_emb = self.transformer.wte(idx) # token embeddings of shape (b, t, n_embd)
        pos_emb = self.transformer.wpe(pos) # position embeddings of shape (t, n_embd)

        # mup
        if self.mup_embedding_mult is not None:
            x = self.mup_embedding_mult * self.transformer.drop(tok_emb + pos_emb) # apply embedding multiplier
        else:
            x = self.transformer.drop(tok_emb + pos_emb)

        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)

        if targets is not None:
            # if we are given some desired targets also calculate the loss
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            # inference-time mini-optimization: only forward the lm_head on the very last position
            logits = self.lm_head(x[:, [-1], :]) # note: using list [-1] to preserve the time dim
            loss = None

        # mup
        if self.use_mup:
            logits /= self.mup_width_mult # scale output logits by width multiplier
        if self.mup_output_logit_multiplier is not None:
            logits *= self.mup_output_logit_multiplier # optionally apply unembedding multiplier

        return logits, loss

    def get_activation_sizes(self):
        return self.activation_sizes

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        # start with all of the candidate parameters
        param_dict = {pn: p for pn, p in self.named_parameters()}
        # filter out those that do not require grad
        param_dict = {pn: p for pn, p in param_dict.items() if p.requires_grad}
        # create optim groups. Any parameters that is 2D will be weight decayed, otherwise no.
        # i.e. all weight tensors in matmuls + embeddings decay, all biases and layernorms don't.
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [
            {'params': decay_params, 'weight_decay': weight_decay},
            {'params': nodecay_params, 'weight_decay': 0.0}
        ]
        num_decay_params = sum(p.numel() for p in decay_params)
        num_nodecay_params = sum(p.numel() for p in nodecay_params)
        print(f"num decayed parameter tensors: {len(decay_params)}, with {num_decay_params:,} parameters")
        print(f"num non-decayed parameter tensors: {len(nodecay_params)}, with {num_nodecay_params:,} parameters")
        # Create AdamW optimizer and use the fused version if it is available
        fused_available = 'fused' in inspect.signature(torch.optim.AdamW).parameters
        use_fused = fused_available and device_type == 'cuda'
        extra_args = dict(fused=True) if use_fused else dict()
        optimizer = torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)
        print(f"using fused AdamW: {use_fused}")

        return optimizer


# train.py, for one width: `config['mup_width_mult'] = float(width) / 64.; config['n_embd'] = width`
# (its n_head is fixed, so head_dim grows with the width), a small vocabulary and context.
def make_model(n_embd=256):
    gptconf = GPTConfig(block_size=64, vocab_size=512, n_layer=2, n_head=4, n_embd=n_embd, dropout=0.0,
                        bias=False, use_mup=True, mup_width_mult=float(n_embd) / 64.)
    return GPT(gptconf)


# train.py's optimizer and the first pass of its learning-rate loop, which sets each param group's lr
# from the names of the parameters in it.
def make_optimizer(model, learning_rate=6e-4, mup_width_mult=None):
    mup_width_mult = mup_width_mult or model.config.mup_width_mult
    optimizer = model.configure_optimizers(1e-1, learning_rate, (0.9, 0.95), 'cpu')
    lr = learning_rate
    for param_group in optimizer.param_groups:
        param_group['lr'] = lr
    param_to_group = {}
    for group in optimizer.param_groups:
        for p in group['params']:
            param_to_group[p] = group

    for name, param in model.named_parameters():
        if param.requires_grad:
            if param in param_to_group:
                param_group = param_to_group[param]

                # Check if the parameter is part of attention or MLP layers
                if any(proj in name for proj in ['c_attn', 'c_fc', 'c_proj']) and name.endswith(('weight')):
                    param_group['lr'] = lr / mup_width_mult
                else:
                    param_group['lr'] = lr
    return optimizer


# The model's own configure_optimizers, as nanoGPT's train.py calls it (one learning rate).
def make_plain_optimizer(model):
    return model.configure_optimizers(1e-1, 6e-4, (0.9, 0.95), 'cpu')
