"""Graphcore's unit-scaled TransformerDecoder (u-µP) with its own AdamW."""
import unit_scaling as uu


def make_model(width: int = 64):
    return uu.TransformerDecoder(hidden_size=width, vocab_size=128, layers=2, heads=4)


def make_optimizer(model):
    return uu.optim.AdamW(model.parameters(), lr=1e-3)
