"""The learning-rate sweep behind `mulint transfer`: train the user's model at several widths and learning rates and judge whether the
best learning rate stays put (µTransfer shown, not assumed)."""
