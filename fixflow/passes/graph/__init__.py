"""Passes on the float `graph` level: shape inference, batch-norm folding, dropout removal,
ReLU6 -> ReLU, cross-layer equalization."""
