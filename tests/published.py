"""Published constants the science tests check against, restated from docs/laws.md (never from our code)."""

# Epoch's refit of Chinchilla (laws.md 1.1).
EPOCH = {"A": 482.01, "B": 2085.43, "E": 1.8172, "alpha": 0.3478, "beta": 0.3658}

# Kumar et al. 2024, Table 2 with offsets (laws.md 3.1); b is stored as n_post. C_x are unpublished: 1 (Eq. 10).
KUMAR = {
    "A": 4.299e3,
    "B": 1.806e4,
    "E": 2.7648,
    "alpha": 0.4965,
    "beta": 0.4965,
    "gamma_w": 2.6745,
    "n_w": 0.3037,
    "gamma_a": 2.2102,
    "n_a": 1.4072,
    "gamma_kv": 0.9578,
    "n_kv": 2.4185,
    "C_T": 0.0598,
    "gamma_D": 0.5068,
    "gamma_N": 0.3439,
    "gamma_post": 0.5907,
    "n_post": 1.1277,
}

# Sun et al. 2025 ("Scaling Laws for Floating-Point Quantization Training"), Table 2 (laws.md 10.2), renamed:
# n -> A, d -> B, eps -> E. Their gamma goes with log2(block size) in the numerator.
SUN = {
    "A": 69.2343,
    "alpha": 0.2368,
    "B": 68973.0621,
    "beta": 0.5162,
    "E": 1.9061,
    "gamma": 11334.5197,
    "delta": 3.1926,
    "nu": 2.9543,
}
