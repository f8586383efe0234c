"""The network's directory of partner agencies."""
