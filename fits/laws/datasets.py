"""Published reference data: Epoch's digitised Chinchilla runs, Kumar et al.'s synthetic precision grid and a
synthetic floating-point sweep from Sun et al.'s law."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fits.laws.equations import KUMAR_TABLE2, precision_loss
from fits.laws.floating_point import fp_loss, sun_params
from fits.laws.observations import Observations

EPOCH_CSV = Path(__file__).resolve().parent.parent / "data" / "chinchilla_epoch.csv"

# Kumar et al. 2024's training grid (docs/laws.md section 3) and the synthetic-data recipe of docs/laws.md.
KUMAR_N = (30e6, 60e6, 110e6, 220e6)
KUMAR_D = (1.5e9, 3e9, 6e9, 13e9, 26e9)
KUMAR_POST_BITS = (3.0, 4.0, 5.0, 6.0, 8.0)


def load_chinchilla_epoch(path: Path = EPOCH_CSV, drop_highest: int = 5) -> Observations:
    """Epoch AI's 245 digitised Chinchilla runs with D = FLOP/(6N), minus the `drop_highest` highest losses."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    n = np.array([float(r["Model Size"]) for r in rows])
    flops = np.array([float(r["Training FLOP"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    keep = np.argsort(loss, kind="stable")[: loss.shape[0] - drop_highest]
    keep.sort()
    return Observations.build(n_params=n[keep], n_tokens=flops[keep] / (6.0 * n[keep]), final_loss=loss[keep])


def kumar_precision_configs() -> list[tuple[float, float, float]]:
    """(P_w, P_a, P_kv) per (N, D) cell: 16-bit, weights 3..12, activations 4..12, KV 4..12, all tied 4..12."""
    configs = [(16.0, 16.0, 16.0)]
    configs += [(float(p), 16.0, 16.0) for p in range(3, 13)]
    configs += [(16.0, float(p), 16.0) for p in range(4, 13)]
    configs += [(16.0, 16.0, float(p)) for p in range(4, 13)]
    configs += [(float(p), float(p), float(p)) for p in range(4, 13)]
    return configs


def kumar_synthetic(
    *,
    noise: float = 0.005,
    seed: int = 0,
    n_values: tuple[float, ...] = KUMAR_N,
    d_values: tuple[float, ...] = KUMAR_D,
    params: dict[str, float] | None = None,
) -> tuple[Observations, Observations]:
    """Synthetic runs from Kumar's Table 2 constants (offsets on, C_x = 1, n_post = 0) on the paper's grid.

    Every run is post-train quantized to each of 3, 4, 5, 6, 8 bits below its weight bits that the law
    covers (P_post <= every training precision); every loss gets independent multiplicative noise
    (1 + noise * standard normal). Returns (noisy, noise-free) observations with identical layout.
    """
    p = dict(params if params is not None else {**KUMAR_TABLE2, "n_post": 0.0})
    rows = [(n, d, *c) for n in n_values for d in d_values for c in kumar_precision_configs()]
    arr = np.array(rows, dtype=np.float64)
    n_, d_, w_, a_, k_ = arr.T
    clean = precision_loss(p, n_params=n_, n_tokens=d_, weight_bits=w_, activation_bits=a_, kv_bits=k_)
    e_run, e_bits = [], []
    for i in range(arr.shape[0]):
        for post in KUMAR_POST_BITS:
            if post < w_[i] and post <= a_[i] and post <= k_[i]:
                e_run.append(i)
                e_bits.append(post)
    er = np.array(e_run, dtype=np.intp)
    eb = np.array(e_bits, dtype=np.float64)
    clean_eval = precision_loss(
        p,
        n_params=n_[er],
        n_tokens=d_[er],
        weight_bits=w_[er],
        activation_bits=a_[er],
        kv_bits=k_[er],
        post_train_bits=eb,
    )
    rng = np.random.default_rng(seed)
    noisy_final = clean * (1.0 + noise * rng.standard_normal(clean.shape))
    noisy_eval = clean_eval * (1.0 + noise * rng.standard_normal(clean_eval.shape))
    common = {
        "n_params": n_,
        "n_tokens": d_,
        "weight_bits": w_,
        "activation_bits": a_,
        "kv_bits": k_,
        "eval_run": er,
        "eval_post_bits": eb,
    }
    return (
        Observations(final_loss=noisy_final, eval_loss=noisy_eval, **common),
        Observations(final_loss=clean, eval_loss=clean_eval, **common),
    )


# A low-bit quantization-aware sweep: weights and activations at 2 to 16 bits, alone and together.
LOW_BITS = (2.0, 3.0, 4.0, 8.0, 16.0)


def low_bit_synthetic(
    *,
    noise: float = 0.005,
    seed: int = 0,
    n_values: tuple[float, ...] = KUMAR_N,
    d_values: tuple[float, ...] = KUMAR_D,
) -> Observations:
    """Synthetic runs from Kumar's Table 2 constants at 2-16 bit weights and activations (KV at 16 bits).

    Kumar's offsets n_w, n_a put 3-bit activations (and, with n_a, 2-bit ones) outside the law's domain (a
    factor 1 - exp(-P/gamma + n) <= 0: Kumar reports such runs diverging), so no finite loss exists there; this
    family trains them, as quantization-aware recipes now do, with the offsets at 0: the same gammas, exponents
    and amplitudes. Configurations: each width for weights alone, activations alone, and both together; every
    (N, D) of the grid; multiplicative noise (1 + noise * standard normal).
    """
    params = {**KUMAR_TABLE2, "n_w": 0.0, "n_a": 0.0, "n_kv": 0.0}
    configs = {(w, 16.0) for w in LOW_BITS} | {(16.0, a) for a in LOW_BITS} | {(b, b) for b in LOW_BITS}
    rows = np.array([(n, d, w, a) for n in n_values for d in d_values for w, a in sorted(configs)], dtype=np.float64)
    n, d, w, a = rows.T
    clean = precision_loss(params, n_params=n, n_tokens=d, weight_bits=w, activation_bits=a, kv_bits=16.0)
    loss = clean * (1.0 + noise * np.random.default_rng(seed).standard_normal(clean.shape))
    return Observations.build(n_params=n, n_tokens=d, final_loss=loss, weight_bits=w, activation_bits=a)


# Sun et al. 2025's range (41M-679M parameters, up to 100B tokens) and floating-point formats from 4 to 16 bits,
# several exponent/mantissa splits per total width so the trade-off between them is visible.
SUN_N = (41e6, 85e6, 154e6, 310e6, 679e6)
SUN_D = (1e10, 2e10, 5e10, 1e11)
SUN_FORMATS = ((1, 2), (2, 1), (1, 3), (2, 2), (3, 1), (2, 3), (3, 2), (4, 1), (4, 3), (5, 2), (2, 5), (8, 7))


def fp_synthetic(*, noise: float = 0.002, seed: int = 0, params: dict[str, float] | None = None) -> Observations:
    """Synthetic runs from Sun et al.'s floating-point law (Table 2, 128-element scaling blocks by default).

    One run per (N, D, format); weights and activations carry the format (E + M + 1 bits), the KV cache 16 bits;
    every loss gets independent multiplicative noise (1 + noise * standard normal).
    """
    p = dict(params if params is not None else sun_params(128.0))
    rows = np.array([(n, d, e, m) for n in SUN_N for d in SUN_D for e, m in SUN_FORMATS], dtype=np.float64)
    n, d, e, m = rows.T
    clean = fp_loss(p, n_params=n, n_tokens=d, exponent_bits=e, mantissa_bits=m)
    loss = clean * (1.0 + noise * np.random.default_rng(seed).standard_normal(clean.shape))
    total = e + m + 1.0
    return Observations.build(
        n_params=n,
        n_tokens=d,
        final_loss=loss,
        weight_bits=total,
        activation_bits=total,
        kv_bits=np.full_like(total, 16.0),
        exponent_bits=e,
        mantissa_bits=m,
    )


# Real BF16 sweeps shipped with the project (fits/data/*/README.md: provenance and licence).
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
OLMO_LADDER_CSV = DATA_DIR / "olmo_ladder" / "runs.csv"
GEMSTONES_CSV = DATA_DIR / "gemstones" / "runs.csv"
GADRE_C4_CSV = DATA_DIR / "gadre_c4" / "runs.csv"


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def load_olmo_ladder(path: Path = OLMO_LADDER_CSV) -> Observations:
    """OLMo 2's model ladder (Bhagia et al. 2024): the 30 `kind=ladder` runs, 190M-3.2B parameters at
    0.5-10x Chinchilla's tokens, with their reruns; N is non-embedding as OLMo counts it, the loss is C4-en
    validation. The three released-model targets are not ladder runs and are left out."""
    rows = [r for r in _read_rows(path) if r["kind"] == "ladder"]
    return _bf16_runs(rows, "n_params")


def load_gemstones(path: Path = GEMSTONES_CSV, *, embeddings: bool = True) -> Observations:
    """Gemstones' 199 cooldown runs (McLeish et al. 2025), 22 shapes from 48M to 2.0B parameters; N counts the
    tied embedding unless `embeddings` is false (then N = n_params - 50304 x width, the authors' correction)."""
    return _bf16_runs(_read_rows(path), "n_params" if embeddings else "n_params_no_embed")


def load_gadre_c4(path: Path = GADRE_C4_CSV) -> Observations:
    """Gadre et al.'s over-training testbed (arXiv:2403.08540), the 34 C4 runs: 11M-6.9B parameters (N counts the
    embeddings, as their fits do), 0.25-640x Chinchilla's tokens, C4 validation loss. The runs are bf16 but the file
    gives no format (exponent and mantissa bits are left unknown, as a team posting N, D and loss would)."""
    rows = _read_rows(path)
    return Observations.build(
        n_params=[float(r["n_params"]) for r in rows],
        n_tokens=[float(r["n_tokens"]) for r in rows],
        final_loss=[float(r["final_loss"]) for r in rows],
    )


def _bf16_runs(rows: list[dict[str, str]], n_column: str) -> Observations:
    """Runs trained in BF16 (16 bits; exponent and mantissa bits as the files give them, 8 and 7)."""
    return Observations.build(
        n_params=[float(r[n_column]) for r in rows],
        n_tokens=[float(r["n_tokens"]) for r in rows],
        final_loss=[float(r["final_loss"]) for r in rows],
        exponent_bits=[float(r["exponent_bits"]) for r in rows],
        mantissa_bits=[float(r["mantissa_bits"]) for r in rows],
    )
