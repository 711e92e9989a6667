"""diet-np: DIET-SNN (Rathi & Roy) in plain NumPy/CuPy with hand-written BPTT."""

__version__ = "0.1.0"
