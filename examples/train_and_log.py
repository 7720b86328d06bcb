"""Train tiny byte-level language models in NumPy with fake quantization and log them to Bitscale.

What it trains: a byte-level MLP language model (Bengio et al. 2003 style). The previous `context`
bytes are embedded, concatenated, passed through two ReLU hidden layers of `width` units and a
softmax over the 256 byte values predicts the next byte. The backward pass is written by hand and
the weights are trained with Adam (warmup, then cosine decay), all in float32 and seeded.

Quantization-aware training: at `bits` < 16 the three linear layers' weights (symmetric, per output
channel, absmax) and their input activations (symmetric, per tensor, absmax) are fake-quantized to
`bits`-bit integers in the forward pass; the backward pass uses the straight-through estimator
(gradients flow to the float master weights as if rounding were the identity). 16 bits means no
fake quantization (training in float32), the usual "unquantized" baseline. After training the
final weights are quantized post-training by round-to-nearest to each lower bit width in
`PTQ_BITS` and the validation loss (nats per byte) is measured for each.

Corpus: the source files at the top of the running interpreter's standard library
(`sysconfig.get_paths()["stdlib"]/*.py`), present on every CPython install and read offline. Files
whose sorted position is a multiple of 10 are held out for validation. Tokens are bytes.

Run it against a server (`make run` prints the demo key):

    python examples/train_and_log.py --url http://localhost:8000 --api-key bsk_... [--quick]
    python examples/train_and_log.py --dry-run            # train and print, log nothing

The default sweep (4 widths x 3 bit widths x 2 token budgets = 24 runs, 18k to 200k parameters, 200k
and 600k tokens) takes a little over 2 minutes on one core; `--quick` (4 small runs) about 3 seconds.
It needs NumPy and the client (`pip install ./client numpy`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# One BLAS thread: on these small matrices threads cost more than they save (2 to 5 times slower
# per step with two threads on 2 shared cores). Set before NumPy is imported; the environment wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
from bitscale_client import Client, Spooled  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

Array = NDArray[np.float32]
Tokens = NDArray[np.int64]

VOCAB = 256  # bytes
UNQUANTIZED_BITS = 16  # at or above this, no fake quantization
PTQ_BITS = (8, 6, 4, 3)  # post-training widths evaluated (those below the training bits); 2-bit RTN is ternary
FAMILY = "tiny-lm"
CORPUS_NAME = "cpython-stdlib-py"
LAYERS = ("w1", "w2", "w3")

# Default and --quick sweeps: widths x bits x token budgets.
DEFAULT_WIDTHS = (32, 64, 128, 256)
DEFAULT_BITS = (16, 8, 4)
DEFAULT_TOKENS = (200_000, 600_000)
QUICK_WIDTHS = (32, 64)
QUICK_BITS = (16, 4)
QUICK_TOKENS = (40_000,)


# Fake quantization -------------------------------------------------------------------------


def quantize(x: Array, bits: float, axis: int | None = None) -> Array:
    """Round `x` to a symmetric `bits`-bit integer grid scaled by its absmax, and back to float.

    `axis=None` uses one scale for the whole tensor; `axis=0` one scale per column (per output
    channel of a `(fan_in, fan_out)` weight). The grid is {-q, ..., q} * scale with q = 2**(bits-1) - 1
    and scale = absmax / q: zero and +-absmax are exact, 2**bits - 1 levels are used (the symmetric
    "restricted range", as in most int8/int4 weight schemes). `bits` >= 16 returns `x` unchanged.
    """
    if bits >= UNQUANTIZED_BITS:
        return x
    if bits < 2:
        raise ValueError("symmetric integer quantization needs at least 2 bits")
    qmax = 2.0 ** (int(bits) - 1) - 1.0
    absmax = np.max(np.abs(x), axis=axis, keepdims=axis is not None)
    scale = np.where(absmax > 0, absmax / qmax, 1.0).astype(np.float32)
    return (np.clip(np.rint(x / scale), -qmax, qmax) * scale).astype(np.float32)


def quantize_ste_backward(grad_output: Array) -> Array:
    """The straight-through estimator: d quantize(x) / dx is taken as the identity.

    With absmax scaling nothing is clipped, so no gradient is masked; it is a named function so that
    the backward pass says where the estimator is used.
    """
    return grad_output


# Corpus ------------------------------------------------------------------------------------


@dataclass
class Corpus:
    train: Tokens
    valid: Tokens
    source: str
    n_files: int


def load_corpus(max_train_bytes: int = 3_000_000, max_valid_bytes: int = 200_000, root: Path | None = None) -> Corpus:
    """Bytes of the standard library's top-level `*.py` files; every 10th file (sorted) is held out."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    if len(files) < 10:
        raise RuntimeError(f"expected Python source files under {root}, found {len(files)}")
    train: list[bytes] = []
    valid: list[bytes] = []
    sizes = [0, 0]
    for position, path in enumerate(files):
        held_out = position % 10 == 0
        limit = max_valid_bytes if held_out else max_train_bytes
        if sizes[held_out] >= limit:
            continue
        data = path.read_bytes()[: limit - sizes[held_out]]
        (valid if held_out else train).append(data)
        sizes[held_out] += len(data)
    return Corpus(
        train=np.frombuffer(b"".join(train), dtype=np.uint8).astype(np.int64),
        valid=np.frombuffer(b"".join(valid), dtype=np.uint8).astype(np.int64),
        source=str(root),
        n_files=len(files),
    )


def unigram_loss(corpus: Corpus) -> float:
    """Validation loss (nats/byte) of the best context-free model: train byte frequencies, add-one smoothed."""
    counts = np.bincount(corpus.train, minlength=VOCAB).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-log_p[corpus.valid].mean())


def windows(data: Tokens, starts: Tokens, context: int) -> tuple[Tokens, Tokens]:
    """Contexts `data[s : s + context]` and next bytes `data[s + context]` for each start `s`."""
    return data[starts[:, None] + np.arange(context)], data[starts + context]


# Model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    width: int = 64
    context: int = 16
    embed: int = 16
    bits: float = 16  # weight and activation bits during training (16: none)

    @property
    def n_params(self) -> int:
        """Non-embedding parameters: the three linear layers with their biases (not the byte embedding)."""
        d_in, h = self.context * self.embed, self.width
        return d_in * h + h + h * h + h + h * VOCAB + VOCAB


def init_params(config: ModelConfig, rng: np.random.Generator) -> dict[str, Array]:
    d_in, h = config.context * config.embed, config.width

    def dense(fan_in: int, fan_out: int, gain: float) -> Array:
        return (rng.standard_normal((fan_in, fan_out)) * gain / math.sqrt(fan_in)).astype(np.float32)

    return {
        "emb": (rng.standard_normal((VOCAB, config.embed)) * 0.5).astype(np.float32),
        "w1": dense(d_in, h, math.sqrt(2.0)),
        "b1": np.zeros(h, np.float32),
        "w2": dense(h, h, math.sqrt(2.0)),
        "b2": np.zeros(h, np.float32),
        "w3": dense(h, VOCAB, 1.0),
        "b3": np.zeros(VOCAB, np.float32),
    }


def quantized_weights(params: dict[str, Array], bits: float) -> dict[str, Array]:
    """The parameters the forward pass uses: linear weights on a per-output-channel `bits`-bit grid."""
    return {name: quantize(value, bits, axis=0) if name in LAYERS else value for name, value in params.items()}


def forward_backward(
    params: dict[str, Array],
    x: Tokens,
    y: Tokens,
    config: ModelConfig,
    *,
    weight_bits: float | None = None,
    grad: bool = True,
) -> tuple[float, dict[str, Array]]:
    """Mean cross-entropy (nats) of predicting `y` from contexts `x`, and its gradients.

    Weights are fake-quantized to `weight_bits` (default: the config's bits) and each linear layer's
    input to the config's bits; the gradients are the straight-through estimator's, for the float weights.
    """
    bits = config.bits
    p = quantized_weights(params, bits if weight_bits is None else weight_bits)
    batch = x.shape[0]
    h0 = p["emb"][x].reshape(batch, -1)
    a0 = quantize(h0, bits)
    z1 = a0 @ p["w1"] + p["b1"]
    h1 = np.maximum(z1, 0)
    a1 = quantize(h1, bits)
    z2 = a1 @ p["w2"] + p["b2"]
    h2 = np.maximum(z2, 0)
    a2 = quantize(h2, bits)
    logits = a2 @ p["w3"] + p["b3"]
    logits -= logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits).sum(axis=1))
    rows = np.arange(batch)
    loss = float(np.mean(log_norm - logits[rows, y]))
    if not grad:
        return loss, {}

    probs = np.exp(logits - log_norm[:, None])
    probs[rows, y] -= 1.0
    d_logits = probs / batch
    grads: dict[str, Array] = {}
    grads["w3"] = quantize_ste_backward(a2.T @ d_logits)
    grads["b3"] = d_logits.sum(axis=0)
    d_z2 = quantize_ste_backward(d_logits @ p["w3"].T) * (z2 > 0)
    grads["w2"] = quantize_ste_backward(a1.T @ d_z2)
    grads["b2"] = d_z2.sum(axis=0)
    d_z1 = quantize_ste_backward(d_z2 @ p["w2"].T) * (z1 > 0)
    grads["w1"] = quantize_ste_backward(a0.T @ d_z1)
    grads["b1"] = d_z1.sum(axis=0)
    d_h0 = quantize_ste_backward(d_z1 @ p["w1"].T).reshape(batch, config.context, config.embed)
    d_emb = np.zeros_like(params["emb"])
    np.add.at(d_emb, x.reshape(-1), d_h0.reshape(-1, config.embed))
    grads["emb"] = d_emb
    return loss, grads


def evaluate(
    params: dict[str, Array],
    data: Tokens,
    config: ModelConfig,
    *,
    weight_bits: float | None = None,
    max_tokens: int = 50_000,
    batch: int = 4096,
) -> float:
    """Mean loss (nats/byte) at `max_tokens` positions spread evenly over `data` (a fixed, deterministic set)."""
    positions = np.unique(np.linspace(0, len(data) - config.context - 1, max_tokens).astype(np.int64))
    n = len(positions)
    total = 0.0
    for start in range(0, n, batch):
        starts = positions[start : start + batch]
        x, y = windows(data, starts, config.context)
        loss, _ = forward_backward(params, x, y, config, weight_bits=weight_bits, grad=False)
        total += loss * len(starts)
    return total / n


# Training ----------------------------------------------------------------------------------


@dataclass
class RunResult:
    config: ModelConfig
    n_tokens: int
    steps: int
    batch_size: int
    lr: float
    seed: int
    final_loss: float
    ptq_losses: dict[float, float]
    train_loss: float
    seconds: float
    params: dict[str, Array] = field(repr=False, default_factory=dict)


def train(
    config: ModelConfig,
    corpus: Corpus,
    n_tokens: int,
    *,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    ptq_bits: Sequence[float] = PTQ_BITS,
    eval_tokens: int = 50_000,
) -> RunResult:
    """Train one model on `n_tokens` next-byte predictions; evaluate it and its PTQ variants on validation."""
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    params = init_params(config, rng)
    moments = {name: (np.zeros_like(v), np.zeros_like(v)) for name, v in params.items()}
    steps = max(1, n_tokens // batch_size)
    warmup = max(1, steps // 20)
    beta1, beta2, eps = 0.9, 0.99, 1e-8
    high = len(corpus.train) - config.context
    recent: list[float] = []
    for step in range(1, steps + 1):
        starts = rng.integers(0, high, size=batch_size)
        x, y = windows(corpus.train, starts, config.context)
        loss, grads = forward_backward(params, x, y, config)
        recent = (recent + [loss])[-50:]
        progress = (step - warmup) / max(1, steps - warmup)
        rate = lr * step / warmup if step <= warmup else lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
        correction = math.sqrt(1 - beta2**step) / (1 - beta1**step)
        for name, g in grads.items():
            m, v = moments[name]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            params[name] -= (rate * correction) * m / (np.sqrt(v) + eps)
    final = evaluate(params, corpus.valid, config, max_tokens=eval_tokens)
    ptq = {
        float(b): evaluate(params, corpus.valid, config, weight_bits=b, max_tokens=eval_tokens)
        for b in ptq_bits
        if b < config.bits
    }
    return RunResult(
        config=config,
        n_tokens=steps * batch_size,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        final_loss=final,
        ptq_losses=ptq,
        train_loss=float(np.mean(recent)),
        seconds=time.perf_counter() - began,
        params=params,
    )


# Logging -----------------------------------------------------------------------------------


def run_payload(result: RunResult, corpus: Corpus, *, family: str, unigram: float) -> dict[str, Any]:
    """The run as Bitscale's API takes it (`Client.log_run(**payload)`), with a stable `external_id`."""
    c = result.config
    quantized = c.bits < UNQUANTIZED_BITS
    key = json.dumps(
        {"family": family, **asdict(c), "n_tokens": result.n_tokens, "seed": result.seed, "lr": result.lr},
        sort_keys=True,
    )
    return {
        "external_id": f"tiny-lm-{hashlib.sha256(key.encode()).hexdigest()[:20]}",
        "name": f"mlp-w{c.width}-{c.bits:g}bit-{result.n_tokens // 1000}k",
        "family": family,
        "n_params": c.n_params,
        "param_count": "non_embedding",
        "n_tokens": result.n_tokens,
        "weight_bits": float(c.bits),
        "activation_bits": float(c.bits),
        "kv_bits": float(UNQUANTIZED_BITS),  # no attention, so no KV cache to quantize
        "number_format": "int" if quantized else "fp",
        "final_loss": round(result.final_loss, 6),
        "status": "finished",
        "dataset": CORPUS_NAME,
        "eval_set": f"{CORPUS_NAME}-heldout",
        "n_layers": 3,
        "d_model": c.width,
        "seq_len": c.context,
        "evaluations": [
            {"post_train_bits": bits, "loss": round(loss, 6), "method": "rtn"}
            for bits, loss in sorted(result.ptq_losses.items(), reverse=True)
        ],
        "metadata": {
            "example": "examples/train_and_log.py",
            "model": "byte-level MLP LM: embedding -> 2 ReLU layers -> softmax over 256 bytes",
            "embed_dim": c.embed,
            "training_quantization": (
                "int symmetric absmax fake quantization (STE): weights per output channel, activations per tensor"
                if quantized
                else "none (float32)"
            ),
            "ptq": "round-to-nearest, int symmetric per output channel, weights only",
            "loss_unit": "nats per byte",
            "unigram_loss": round(unigram, 6),
            "train_loss_last_50_steps": round(result.train_loss, 6),
            "steps": result.steps,
            "batch_size": result.batch_size,
            "lr": result.lr,
            "seed": result.seed,
            "seconds": round(result.seconds, 2),
            "corpus": f"top-level *.py of {corpus.source} ({corpus.n_files} files; every 10th held out)",
            "numpy": np.__version__,
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
    }


# Per position, NumPy's fixed costs weigh about as much as this many parameters (measured on the default sweep: a
# width-32 run takes a third of a width-256 run's time, not a tenth).
OVERHEAD_PARAMS = 60_000


def run_cost(config: ModelConfig, n_tokens: int, eval_tokens: int) -> float:
    """A run's relative cost for the time-left estimate: its parameters (plus the fixed cost per position) times
    the positions it trains on and, a third as costly, evaluates (the validation loss, then once per post-training
    precision below its training bits)."""
    ptq = sum(1 for bits in PTQ_BITS if bits < config.bits)
    return float(config.n_params + OVERHEAD_PARAMS) * (n_tokens + eval_tokens * (1 + ptq) / 3)


def time_left(elapsed: float, *, done: float, total: float) -> str:
    """The sweep's remaining time, extrapolated from the cost done so far: "1m40s", "25s"; "" when finished."""
    if done <= 0 or done >= total:
        return ""
    seconds = round(elapsed * (total - done) / done)
    return f"~{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"~{seconds}s"


def describe(result: RunResult, unigram: float) -> str:
    c = result.config
    ptq = " ".join(f"{b:g}b={loss:.3f}" for b, loss in sorted(result.ptq_losses.items(), reverse=True))
    return (
        f"width {c.width:4d} ({c.n_params:7,d} params)  {c.bits:>4g}-bit  {result.n_tokens:8,d} tokens  "
        f"loss {result.final_loss:.3f} (unigram {unigram:.3f})  PTQ {ptq or '-':40s} {result.seconds:5.1f}s"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("BITSCALE_URL"), help="server (default: $BITSCALE_URL)")
    parser.add_argument("--api-key", default=os.environ.get("BITSCALE_API_KEY"), help="default: $BITSCALE_API_KEY")
    parser.add_argument("--family", default=FAMILY, help=f"family to log the runs under (default {FAMILY})")
    parser.add_argument("--quick", action="store_true", help="a few small runs (seconds) instead of the full sweep")
    parser.add_argument("--dry-run", action="store_true", help="train and print the runs; log nothing")
    parser.add_argument("--widths", type=_ints, help="hidden widths, e.g. 32,64,128")
    parser.add_argument("--bits", type=_floats, help="training bit widths (weights and activations), e.g. 16,8,4")
    parser.add_argument("--tokens", type=_ints, help="token budgets (next-byte predictions), e.g. 150000,400000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-tokens", type=int, default=50_000, help="validation positions evaluated per model")
    parser.add_argument("--json", action="store_true", help="print the payloads as JSON after the sweep")
    return parser


def _ints(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None, out: Any = None) -> list[dict[str, Any]]:
    """Run the sweep, log each run as it finishes (unless --dry-run) and return the payloads."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    client: Client | None = None
    if not args.dry_run:
        if not args.url or not args.api_key:
            raise SystemExit("give --url and --api-key (or BITSCALE_URL / BITSCALE_API_KEY), or use --dry-run")
        client = Client(args.url, args.api_key)
    widths = args.widths or (QUICK_WIDTHS if args.quick else DEFAULT_WIDTHS)
    bit_widths = args.bits or (QUICK_BITS if args.quick else DEFAULT_BITS)
    budgets = args.tokens or (QUICK_TOKENS if args.quick else DEFAULT_TOKENS)

    corpus = load_corpus()
    unigram = unigram_loss(corpus)
    began = time.perf_counter()
    print(
        f"corpus: {len(corpus.train):,} train / {len(corpus.valid):,} validation bytes from {corpus.source}; "
        f"unigram loss {unigram:.3f} nats/byte; {len(widths) * len(bit_widths) * len(budgets)} runs",
        file=out,
        flush=True,
    )
    payloads = []
    sweep = [
        (ModelConfig(width=width, bits=bits), n_tokens)
        for n_tokens in budgets
        for width in widths
        for bits in bit_widths
    ]
    costs = [run_cost(config, n_tokens, args.eval_tokens) for config, n_tokens in sweep]
    for index, (config, n_tokens) in enumerate(sweep):
        result = train(config, corpus, n_tokens, seed=args.seed, eval_tokens=args.eval_tokens)
        payload = run_payload(result, corpus, family=args.family, unigram=unigram)
        payloads.append(payload)
        line = f"[{index + 1:{len(str(len(sweep)))}d}/{len(sweep)}] " + describe(result, unigram)
        if client is not None:
            logged = client.log_run(**payload)
            line += f"  -> spooled to {logged.path}" if isinstance(logged, Spooled) else f"  -> run {logged.id}"
        left = time_left(time.perf_counter() - began, done=sum(costs[: index + 1]), total=sum(costs))
        print(line + (f"  ({left} left)" if left else ""), file=out, flush=True)
    print(f"{len(payloads)} runs in {time.perf_counter() - began:.1f}s", file=out)
    if args.json:
        print(json.dumps(payloads, indent=2), file=out)
    return payloads


__all__ = [
    "Corpus",
    "ModelConfig",
    "RunResult",
    "evaluate",
    "forward_backward",
    "init_params",
    "load_corpus",
    "main",
    "quantize",
    "quantize_ste_backward",
    "run_payload",
    "train",
    "unigram_loss",
]

if __name__ == "__main__":
    main()
