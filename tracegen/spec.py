"""Specified (non-fitted) id-stream distributions of dist.json, their validation, samplers and importers.

Owns every ``tables[j].ids`` node kind except the fitted ``"class-stack"`` (that one is
:mod:`tracegen.tracemodel`'s):

- ``{"kind": "parametric", "popularity": {"family": "zipfian", "params": {"a": A}}}``: the
  independent reference model (IRM): every access draws popularity rank ``k`` (1-based) with
  probability ``k**-A / H(card, A)`` like ``scipy.stats.zipfian(A, card)``; rank ``k`` is id ``perm(k-1)``.
- ``{"kind": "parametric", "stack_distance": {"family": F, "params": {...}}, "cold": {"rate": c}}``: an
  LRU stack model: with probability ``c`` the access is cold (a never-seen id); otherwise it reuses the
  id at stack distance ``sd`` drawn i.i.d. from ``F`` (``"lognormal"``: ``sd = floor(exp(mu + sigma Z))``;
  ``"powerlaw"``: Lomax/Pareto II, ``P(sd >= x) = (1 + x / scale) ** -alpha``; or an
  ``"empirical"``/``"empirical-binned"`` node). An ``sd`` deeper than the current stack becomes a cold
  access; when every id has been seen, a cold access takes the LRU bottom (the deepest id).
- both ``popularity`` and ``stack_distance``: a **mixture** of the two processes sharing one LRU stack.
  Each access independently is an IRM draw with probability ``irm_share`` (default 0.5) and a stack
  draw otherwise; the stack is updated by every access, so stack reuses re-touch what the IRM made hot.
  The IRM part fixes the head of the popularity curve (top-x% shares, set by ``a``: ``irm_share`` of
  the accesses follow the Zipf law exactly), the stack part adds the short-range temporal locality a
  stationary IRM cannot produce (bursts, small stack distances). Both parts are exact samplers of their
  own law, the mixture's MRC is not the mixture of MRCs (IRM accesses push the stack), so ``irm_share``
  trades head share against locality; this is why fitted traces use the core model, not this kind.
  ``cold`` applies only with ``stack_distance``, ``irm_share`` only to the mixture: elsewhere they are
  refused (they would be ignored).
- ``{"kind": "uniform"}``, ``{"kind": "gaussian", "params": {"mean": m, "std": s}}``: the DLRM
  reference's ``--rand-data-dist``: uniform ids over ``[0, card)``; Gaussian ``round(m + s Z)`` clipped
  to ``[0, card - 1]`` (``m`` defaults to the middle). These ids are not permuted (the Gaussian's point
  is that neighbouring ids are hot together). Beyond ``2**53`` rows neither goes through one float64
  (which would leave every id on a grid, e.g. no odd id of ``2**62 - 1`` rows): uniform ids come from
  two 64-bit words each, Gaussian offsets are added to the integer part of ``m``. Unlike the reference
  we do not de-duplicate ids inside a bag: this is a stream kind, bags are cut by the trace model.
- ``{"kind": "stack-empirical", "sd": {"kind": "empirical", ...}, "cold": {"rate": c}}``: the stack model
  with an empirical stack-distance law, as imported from the DLRM reference's ``dist_emb_j.log``.
- ``{"kind": "batch-reuse", ...}``: Meta's dlrm_datasets per-batch reuse-factor statistics (see
  :func:`batch_reuse_from_stats`): each batch of ``batch_accesses`` accesses is built from scratch:
  draw distinct rows and their access counts from the "col size" histogram (within a bucket
  ``(lo, hi]`` the count follows the maximum-entropy (truncated geometric) law whose mean makes the
  bucket's share of accesses come out right; a draw that would overflow the batch is rejected, so a
  batch has exactly ``batch_accesses`` accesses), then shuffle the accesses within the batch. Across
  batches (``"carry"``): ``"independent"`` draws each batch's rows uniformly without replacement from
  ``[0, card)`` (no cross-batch locality beyond chance); ``"persistent"`` keeps a fixed hotness order
  (a Zipf(1) weight per row): each batch picks its rows by weighted sampling without replacement and
  gives the largest counts to the heaviest rows, so hot rows stay hot from batch to batch. The
  published statistics say nothing about cross-batch reuse; this is our assumption, documented.

Synthetic ids are a keyed pseudo-random bijection ``perm`` of ``[0, card)`` (the fitted sampler's
cycle-walking Feistel network, computed per access, never materialised: any cardinality up to ``2**62``
samples in memory that follows the accesses, not the table) applied to popularity rank (IRM) and to
creation order (cold accesses take ``perm(0), perm(1), ...`` skipping ids already seen).

Samplers: :func:`make_sampler` returns an object whose ``next(n)`` yields the next ``n`` ids and
carries its state across calls, so sampling in chunks equals sampling in one shot exactly (every
random stream consumes a fixed number of uniforms per access, or is keyed by batch index).

Importers: :func:`from_dlrm_dist` (``dist_emb_j.log``; depth 1-based with 0 = cold is converted to
our ``sd = depth - 1``, ``-1`` cold here and nowhere else; the raw ids of its first line are never
kept, only their count becomes the cardinality) and :func:`from_locality_stats`.

User-facing description with examples: ``docs/specs.md``. Notation: ``N`` accesses, ``card`` rows.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from tracegen.errors import TracegenError

KINDS = ("parametric", "uniform", "gaussian", "stack-empirical", "batch-reuse")
POPULARITY_FAMILIES = ("zipfian",)
SD_FAMILIES = ("lognormal", "powerlaw", "empirical", "empirical-binned")
CARRY = ("independent", "persistent")
PROB_TOL = 1e-6
_ZIPF_EXACT = 1 << 22  # ranks tabulated exactly; the tail beyond is inverted from the continuous law
PERSISTENT_MAX_CARD = 1 << 27  # "persistent" batch-reuse draws one key per row per batch
_DENSE_STACK = 1 << 22  # stack models of tables up to this many rows index their state by rank
_FLOAT_EXACT = 1 << 53  # uniform / Gaussian ids of larger tables are not drawn through one float64
_BIG_OFFSET = 1 << 61  # big-table Gaussian: offsets clipped to +-this, the integer mean to [-this, card + this]


# ================================================================================================
# validation
# ================================================================================================

def _fail(where: str, msg: str):
    raise TracegenError(f"{where}: {msg}")


def _get(node, key: str, where: str, types=None, required: bool = True, default=None):
    if not isinstance(node, dict):
        _fail(where, f"must be an object, got {type(node).__name__}")
    if key not in node:
        if required:
            _fail(f"{where}.{key}", "missing field")
        return default
    v = node[key]
    if types is not None and (not isinstance(v, types) or isinstance(v, bool)):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        _fail(f"{where}.{key}", f"must be {names}, got {type(v).__name__}")
    return v


def _number(node, key, where, *, required=True, default=None, lo=None, lo_open=False, hi=None, hi_open=False):
    v = _get(node, key, where, (int, float), required=required, default=default)
    if v is None:
        return v
    v = float(v)
    w = f"{where}.{key}"
    if not math.isfinite(v):
        _fail(w, f"must be finite, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        _fail(w, f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        _fail(w, f"must be {'<' if hi_open else '<='} {hi:g}, got {v:g}")
    return v


def _probs(node, where: str, key: str = "probs", n: int | None = None) -> np.ndarray:
    p = _get(node, key, where, list)
    w = f"{where}.{key}"
    try:
        a = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(w, "must be a list of numbers")
    if a.ndim != 1 or a.size == 0:
        _fail(w, "must be a non-empty list of numbers")
    if n is not None and a.size != n:
        _fail(w, f"has {a.size} entries, expected {n}")
    if not np.all(np.isfinite(a)):
        _fail(w, "must be finite")
    if a.min() < 0:
        _fail(w, f"probabilities must be >= 0, entry {int(np.argmin(a))} is {a.min():g}")
    if abs(a.sum() - 1.0) > PROB_TOL:
        _fail(w, f"probabilities must sum to 1, they sum to {a.sum():.9g}")
    return a


def _int_list(node, key, where, *, strictly_increasing=False, lo=None) -> np.ndarray:
    v = _get(node, key, where, list)
    w = f"{where}.{key}"
    if not v or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
        _fail(w, "must be a non-empty list of integers")
    a = np.asarray(v, dtype=np.int64)
    if lo is not None and a.min() < lo:
        _fail(w, f"entries must be >= {lo}, entry {int(np.argmin(a))} is {int(a.min())}")
    if strictly_increasing and a.size > 1 and np.any(np.diff(a) <= 0):
        _fail(w, "must be strictly increasing")
    return a


def _validate_sd_law(node, where: str) -> None:
    """A stack-distance law: ``{"family": F, "params": {...}}`` or an empirical node."""
    if not isinstance(node, dict):
        _fail(where, f"must be an object, got {type(node).__name__}")
    if "kind" in node and "family" not in node:  # an empirical node
        kind = node["kind"]
        if kind == "empirical":
            vals = _int_list(node, "values", where, lo=0)
            _probs(node, where, n=vals.size)
        elif kind == "empirical-binned":
            edges = _int_list(node, "edges", where, lo=0, strictly_increasing=True)
            if edges.size < 2:
                _fail(f"{where}.edges", "needs at least 2 edges")
            _probs(node, where, n=edges.size - 1)
        else:
            _fail(f"{where}.kind", f"unknown kind {kind!r}; expected 'empirical' or 'empirical-binned'")
        return
    fam = _get(node, "family", where, str)
    if fam not in ("lognormal", "powerlaw"):
        _fail(f"{where}.family", f"unknown family {fam!r}; expected one of lognormal, powerlaw "
              "(or an 'empirical'/'empirical-binned' node)")
    params = _get(node, "params", where, dict)
    pw = f"{where}.params"
    if fam == "lognormal":
        _number(params, "mu", pw)
        _number(params, "sigma", pw, lo=0, lo_open=True)
    else:
        _number(params, "alpha", pw, lo=0, lo_open=True)
        _number(params, "scale", pw, lo=0, lo_open=True, required=False)


def _validate_cold(node, where: str, required: bool) -> None:
    cold = _get(node, "cold", where, dict, required=required)
    if cold is not None:
        _number(cold, "rate", f"{where}.cold", lo=0, hi=1)


def validate_node(node, where: str = "ids") -> None:
    """Check a (non-fitted) ids node; raise :class:`TracegenError` naming the field path on any problem.

    ``where`` is the node's own path, e.g. ``"tables[0].ids"``; errors read
    ``"tables[0].ids.popularity.params.a: must be > 0, got -1"``.
    """
    kind = _get(node, "kind", where, str)
    if kind == "parametric":
        pop = _get(node, "popularity", where, dict, required=False)
        sd = _get(node, "stack_distance", where, dict, required=False)
        if pop is None and sd is None:
            _fail(where, "a parametric node needs 'popularity', 'stack_distance' or both")
        if pop is not None:
            w = f"{where}.popularity"
            fam = _get(pop, "family", w, str)
            if fam not in POPULARITY_FAMILIES:
                _fail(f"{w}.family",
                      f"unknown family {fam!r}; expected one of {', '.join(POPULARITY_FAMILIES)}")
            _number(_get(pop, "params", w, dict), "a", f"{w}.params", lo=0, lo_open=True)
        if sd is not None:
            _validate_sd_law(sd, f"{where}.stack_distance")
            _validate_cold(node, where, required=False)
        elif "cold" in node:  # would be ignored: an IRM has no cold accesses of its own
            _fail(f"{where}.cold", "applies only with 'stack_distance' (the stack model or the mixture)")
        if pop is not None and sd is not None:
            _number(node, "irm_share", where, required=False, lo=0, hi=1)
        elif "irm_share" in node:
            _fail(f"{where}.irm_share", "applies only to the mixture (both 'popularity' and 'stack_distance')")
    elif kind == "uniform":
        pass
    elif kind == "gaussian":
        params = _get(node, "params", where, dict)
        _number(params, "mean", f"{where}.params", required=False)
        _number(params, "std", f"{where}.params", lo=0, lo_open=True)
    elif kind == "stack-empirical":
        _validate_sd_law(_get(node, "sd", where, dict), f"{where}.sd")
        _validate_cold(node, where, required=False)
    elif kind == "batch-reuse":
        _number(node, "batch_accesses", where, lo=1)
        if float(node["batch_accesses"]) != int(node["batch_accesses"]):
            _fail(f"{where}.batch_accesses", "must be an integer")
        edges = _int_list(node, "edges", where, lo=0, strictly_increasing=True)
        nb = edges.size  # buckets (e0, e1], ..., (e_last, inf)
        _probs(node, where, "unique_probs", n=nb)
        _probs(node, where, "access_probs", n=nb)
        _number(node, "mean_count", where, lo=1)
        carry = _get(node, "carry", where, str, required=False, default="independent")
        if carry not in CARRY:
            _fail(f"{where}.carry", f"unknown carry {carry!r}; expected one of {', '.join(CARRY)}")
    elif kind == "class-stack":
        _fail(f"{where}.kind", "'class-stack' is a fitted node: validate it with tracegen.tracemodel")
    else:
        _fail(f"{where}.kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)} "
              "or class-stack (the fitted kind)")


# ================================================================================================
# random streams
# ================================================================================================

def _streams(seed, k: int) -> list[np.random.Generator]:
    """``k`` independent generators derived from ``seed`` (int, SeedSequence or Generator)."""
    if isinstance(seed, np.random.Generator):
        return list(seed.spawn(k))
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.default_rng(s) for s in ss.spawn(k)]


def _idx_dtype(card: int):
    """int32 index arrays when they fit (half the memory of the permutation and stack state)."""
    return np.int32 if 2 * card + 64 < 2**31 else np.int64


class _Bijection:
    """The keyed pseudo-random bijection of ``[0, card)`` (rank or creation ordinal -> synthetic id).

    The fitted sampler's cycle-walking Feistel network (:func:`tracegen.tracemodel._feistel_keys`,
    ``tracegen._sample_kernels._permute``), computed per drawn rank: nothing of size ``card`` is
    ever built, so any cardinality up to ``2**62`` costs the same memory. Keyed from ``rng``.
    """

    def __init__(self, rng: np.random.Generator, card: int):
        from tracegen import _sample_kernels
        from tracegen.tracemodel import _feistel_keys

        self._permute = _sample_kernels._permute
        self.card = card
        ss = np.random.SeedSequence(rng.bit_generator.random_raw(4).tolist())
        self.keys, self.half = _feistel_keys(ss, card)

    def __call__(self, ranks: np.ndarray) -> np.ndarray:
        return self._permute(np.ascontiguousarray(ranks, np.int64), self.card, self.half, self.keys)


def _check_card(cardinality) -> int:
    if not isinstance(cardinality, (int, np.integer)) or isinstance(cardinality, bool) or cardinality < 1:
        raise TracegenError(f"cardinality must be a positive integer, got {cardinality!r}")
    return int(cardinality)


# ================================================================================================
# i.i.d. laws by inverse CDF (one uniform per draw)
# ================================================================================================

class _Cdf:
    """``u -> min(searchsorted(cdf, u, 'right'), len - 1)`` by the cut-point method (expected O(1))."""

    def __init__(self, cdf: np.ndarray):
        from tracegen import _spec_kernels as K

        self._k = K
        self.cdf = np.ascontiguousarray(cdf, dtype=np.float64)
        self.guide = K._guide_table(self.cdf, int(self.cdf.size))

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return self._k._guided_search(self.cdf, self.guide, np.ascontiguousarray(u, dtype=np.float64))


class _Zipf:
    """Ranks ``0..card-1`` with ``P(k) ~ (k + 1) ** -a`` (``scipy.stats.zipfian(a, card)`` minus 1)."""

    def __init__(self, a: float, card: int):
        self.a, self.card = a, card
        m = min(card, _ZIPF_EXACT)
        w = np.arange(1, m + 1, dtype=np.float64) ** -a
        head = float(w.sum())
        tail = 0.0
        if card > m:  # integral of x**-a over [m + 0.5, card + 0.5]: midpoint-rule approximation
            tail = self._integral(m + 0.5, card + 0.5)
        self.total = head + tail
        self.cdf = np.cumsum(w) / self.total
        self.search = _Cdf(self.cdf)
        self.m, self.head_mass = m, head / self.total

    def _integral(self, x0: float, x1: float) -> float:
        a = self.a
        if abs(a - 1.0) < 1e-12:
            return math.log(x1 / x0)
        return (x1 ** (1 - a) - x0 ** (1 - a)) / (1 - a)

    def ranks(self, u: np.ndarray) -> np.ndarray:
        k = self.search(u)  # == searchsorted(cdf, u, "right") clipped; the tail is fixed below
        if self.card > self.m:
            t = u >= self.head_mass
            if np.any(t):
                # invert the continuous tail: mass (u - head) * total of x**-a from m + 0.5
                r = (u[t] - self.head_mass) * self.total
                a, x0 = self.a, self.m + 0.5
                if abs(a - 1.0) < 1e-12:
                    x = x0 * np.exp(r)
                else:
                    x = (x0 ** (1 - a) + r * (1 - a)) ** (1 / (1 - a))
                k[t] = np.floor(x - 0.5).astype(np.int64)  # x in [k + 0.5, k + 1.5) -> rank k (0-based)
        return np.clip(k, 0, self.card - 1)


class _SdLaw:
    """A stack-distance law as ``u -> sd`` (int64 >= 0)."""

    def __init__(self, node):
        self.family = node.get("family", node.get("kind"))
        if self.family == "lognormal":
            self.mu, self.sigma = float(node["params"]["mu"]), float(node["params"]["sigma"])
        elif self.family == "powerlaw":
            self.alpha = float(node["params"]["alpha"])
            self.scale = float(node["params"].get("scale", 1.0))
        elif self.family == "empirical":
            self.values = np.asarray(node["values"], np.int64)
            self.cdf = np.cumsum(np.asarray(node["probs"], np.float64))
            self.cdf /= self.cdf[-1]
            self.search = _Cdf(self.cdf)
        else:  # empirical-binned: uniform integer inside [edges[i], edges[i+1])
            self.edges = np.asarray(node["edges"], np.int64)
            self.cdf = np.cumsum(np.asarray(node["probs"], np.float64))
            self.cdf /= self.cdf[-1]
            self.search = _Cdf(self.cdf)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        big = float(1 << 62)
        if self.family == "lognormal":
            from scipy.special import ndtri

            with np.errstate(over="ignore"):  # |mu + sigma z| beyond float range: exp gives 0 or big
                x = np.exp(np.minimum(self.mu + self.sigma * ndtri(u), 43.0))
            return np.floor(np.minimum(x, big)).astype(np.int64)
        if self.family == "powerlaw":
            # x = scale * (exp(t) - 1), t = -log(1 - u) / alpha; t is capped where x reaches big, so a
            # tiny alpha (a tail so heavy that every reuse is deeper than any stack) never overflows
            with np.errstate(over="ignore"):
                t = -np.log1p(-u) / self.alpha
            t = np.minimum(t, math.log1p(big / self.scale))
            x = self.scale * np.expm1(t)
            return np.floor(np.minimum(x, big)).astype(np.int64)
        i = self.search(u)
        if self.family == "empirical":
            return self.values[i]
        lo, hi = self.edges[i], self.edges[i + 1]
        # position inside the bin from the same uniform: rescale u within the bin's CDF mass
        c0 = np.where(i > 0, self.cdf[np.maximum(i - 1, 0)], 0.0)
        frac = np.clip((u - c0) / np.maximum(self.cdf[i] - c0, 1e-300), 0.0, np.nextafter(1.0, 0.0))
        return lo + np.floor(frac * (hi - lo)).astype(np.int64)


# ================================================================================================
# samplers
# ================================================================================================

class _UniformSampler:
    """``floor(u * card)`` up to :data:`_FLOAT_EXACT` rows; beyond, two 64-bit words per id (a float
    ``u`` has 53 bits: ``u * card`` would only reach ids on a grid, e.g. no odd id of 2**62 - 1 rows)."""

    def __init__(self, card, seed):
        self.card = card
        (self.rng,) = _streams(seed, 1)

    def next(self, n: int) -> np.ndarray:
        if self.card <= _FLOAT_EXACT:
            return np.floor(self.rng.random(n) * self.card).astype(np.int64)
        from tracegen import _spec_kernels as K

        raw = self.rng.bit_generator.random_raw(2 * n)  # a fixed 2 words per id: chunking invariant
        return K._scale_u128(np.ascontiguousarray(raw[0::2]), np.ascontiguousarray(raw[1::2]), self.card)


class _GaussianSampler:
    def __init__(self, node, card, seed):
        p = node["params"]
        self.card = card
        self.mean = float(p["mean"]) if p.get("mean") is not None else (card - 1) / 2.0
        self.std = float(p["std"])
        (self.rng,) = _streams(seed, 1)
        # big tables: the mean as an exact integer part and a fraction (the default middle exactly)
        if p.get("mean") is None:
            base, self.frac = (card - 1) // 2, 0.5 * ((card - 1) % 2)
        else:
            base = math.floor(self.mean)
            self.frac = self.mean - base
        self.base = min(max(base, -_BIG_OFFSET), card + _BIG_OFFSET)  # beyond: every id clips to an end

    def next(self, n: int) -> np.ndarray:
        from scipy.special import ndtri

        z = ndtri(self.rng.random(n))
        if self.card <= _FLOAT_EXACT:
            x = np.rint(self.mean + self.std * z)
            return np.clip(np.nan_to_num(x, nan=self.mean), 0, self.card - 1).astype(np.int64)
        # beyond 2**53 rows the float m + s Z sits on a grid of the float spacing at m: add an integer
        # offset rint(frac(m) + s Z) to the integer part of m instead (both clipped so that the int64
        # sum cannot overflow and a mean far outside the table still clips every id to that end)
        lim = float(_BIG_OFFSET)
        off = np.clip(np.nan_to_num(np.rint(self.frac + self.std * z), nan=0.0), -lim, lim).astype(np.int64)
        return np.clip(off + np.int64(self.base), 0, self.card - 1)


class _IrmSampler:
    def __init__(self, node, card, seed):
        self.law = _Zipf(float(node["popularity"]["params"]["a"]), card)
        r_perm, self.rng = _streams(seed, 2)
        self.ids_of = _Bijection(r_perm, card)  # popularity rank -> id

    def next(self, n: int) -> np.ndarray:
        return self.ids_of(self.law.ranks(self.rng.random(n)))


class _StackSampler:
    """LRU stack model, optionally mixed with an IRM (see the module docstring)."""

    def __init__(self, card, seed, sd_law, cold_rate: float, zipf: _Zipf | None, irm_share: float):
        from tracegen import _spec_kernels as K

        self._k = K
        self.card = card
        self.sd_law, self.cold_rate, self.zipf, self.irm_share = sd_law, cold_rate, zipf, irm_share
        r_perm, self.r_mix, self.r_cold, self.r_sd, self.r_pop = _streams(seed, 5)
        self.ids_of = _Bijection(r_perm, card)  # creation ordinal == popularity rank -> id
        self.cap = int(min(2 * card + 64, 1 << 16))
        self.tree = np.zeros(self.cap + 1, np.int32)
        self.dense = card <= _DENSE_STACK
        if self.dense:  # label == rank: one slot per row
            dt = _idx_dtype(card)
            self.lab2pos = np.full(card, -1, dt)
            self.lab2rank = np.zeros(0, np.int64)
            self.hkeys = np.zeros(0, np.int64)
        else:  # ranks get labels on first access: memory follows the rows touched (grown in _reserve)
            dt = np.int64
            self.lab2pos = np.full(1024, -1, dt)
            self.lab2rank = np.zeros(1024, np.int64)
            self.hkeys = np.full(4096, -1, np.int64)
        self.hvals = np.zeros(self.hkeys.size, np.int64)
        self.pos2lab = np.full(self.cap, -1, dt)
        self.state = np.zeros(4, np.int64)  # t, marked, next_new, labels

    def _decisions(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        K = self._k
        # every stream gives exactly n uniforms per call (chunking invariance); only the needed ones
        # are transformed
        ops = np.full(n, K.OP_DEPTH, np.int8)
        u_sd = self.r_sd.random(n)
        cold = self.r_cold.random(n) < self.cold_rate
        ops[cold] = K.OP_COLD
        vals = np.zeros(n, np.int64)
        if self.zipf is not None:
            irm = self.r_mix.random(n) < self.irm_share
            u_pop = self.r_pop.random(n)
            ops[irm] = K.OP_ID
            vals[irm] = self.zipf.ranks(u_pop[irm])
            depth = ops == K.OP_DEPTH
            vals[depth] = self.sd_law(u_sd[depth])
        else:
            depth = ~cold
            vals[depth] = self.sd_law(u_sd[depth])
        return ops, vals

    def _make_room(self) -> None:
        t, marked = int(self.state[0]), int(self.state[1])
        cap = self.cap
        if marked * 2 > cap and cap < 2 * self.card + 64:
            cap = int(min(2 * cap, 2 * self.card + 64))
        tree = np.zeros(cap + 1, np.int32)
        pos2lab = np.full(cap, -1, self.pos2lab.dtype)
        m = self._k._compact(t, self.pos2lab, self.lab2pos, tree, pos2lab)
        self.tree, self.pos2lab, self.cap = tree, pos2lab, cap
        self.state[0] = m
        self.state[1] = m

    def _reserve(self, extra: int) -> None:
        """Sparse mode: room for ``extra`` more labels, the hash table at most half full after them."""
        need = min(int(self.state[3]) + extra, self.card)  # one label per distinct rank, at most card
        if need > self.lab2rank.size:
            size = max(need, 2 * self.lab2rank.size)
            self.lab2pos = np.concatenate([self.lab2pos, np.full(size - self.lab2pos.size, -1, np.int64)])
            self.lab2rank = np.concatenate([self.lab2rank, np.zeros(size - self.lab2rank.size, np.int64)])
        if 2 * need > self.hkeys.size:
            size = 1 << (2 * need).bit_length()
            self.hkeys = np.full(size, -1, np.int64)
            self.hvals = np.zeros(size, np.int64)
            self._k._hash_rebuild(self.lab2rank, int(self.state[3]), self.hkeys, self.hvals)

    def ranks(self, n: int) -> np.ndarray:
        """The next ``n`` accesses as popularity ranks / creation ordinals (before the bijection)."""
        ops, vals = self._decisions(n)
        return self._replay(ops, vals)

    def _replay(self, ops: np.ndarray, vals: np.ndarray) -> np.ndarray:
        n = ops.size
        out = np.empty(n, np.int64)
        i = 0
        while True:
            if not self.dense:
                self._reserve(n - i)
            i = self._k._stack_replay(ops, vals, self.card, self.state, self.tree, self.pos2lab,
                                      self.lab2pos, self.lab2rank, self.hkeys, self.hvals, out, i)
            if i >= n:
                return out
            self._make_room()

    def next(self, n: int) -> np.ndarray:
        return self.ids_of(self.ranks(n))


class _BatchReuseSampler:
    """Meta's per-batch reuse statistics; batches are generated whole and buffered."""

    def __init__(self, node, card, seed):
        self.card = card
        self.batch = int(node["batch_accesses"])
        self.carry = node.get("carry", "independent")
        if self.carry == "persistent" and card > PERSISTENT_MAX_CARD:
            raise TracegenError(f"batch-reuse with carry 'persistent' draws a hotness key for every row of "
                                f"every batch: cardinality {card} is too large (at most {PERSISTENT_MAX_CARD})")
        edges = np.asarray(node["edges"], np.int64)
        self.lo = edges
        self.hi = np.concatenate([edges[1:], [-1]])  # -1: open last bucket
        self.q = np.asarray(node["unique_probs"], np.float64)
        self.q = self.q / self.q.sum()
        self.means = _bucket_means(edges, self.q, np.asarray(node["access_probs"], np.float64),
                                   float(node["mean_count"]))
        self.ratio = np.array([_geom_ratio(int(lo), int(hi), m)
                               for lo, hi, m in zip(self.lo, self.hi, self.means)])
        self.cum_q = np.cumsum(self.q)
        ss = seed.bit_generator.seed_seq if isinstance(seed, np.random.Generator) else seed
        ss = ss if isinstance(ss, np.random.SeedSequence) else np.random.SeedSequence(ss)
        self._entropy = ss.generate_state(4)
        self.ids_of = _Bijection(np.random.default_rng(self._entropy.tolist() + [0]), card)
        self.buf = np.empty(0, np.int64)
        self.k = 0  # next batch index

    def _draw(self, rng: np.random.Generator, m: int) -> np.ndarray:
        b = np.minimum(np.searchsorted(self.cum_q, rng.random(m), side="right"), self.q.size - 1)
        return _sample_bucket(self.lo[b], self.hi[b], self.ratio[b], rng.random(m))

    def _counts(self, rng: np.random.Generator) -> np.ndarray:
        """Access counts of the distinct rows of one batch, summing to ``self.batch`` exactly.

        Rows are drawn i.i.d. from the count law until the batch is full; a draw that would overflow
        the remaining budget is rejected (not truncated: truncating the straddling draw would bias
        the heaviest buckets down, since the straddler is size-biased), so only the last few rows of
        a batch are conditioned on fitting.
        """
        est = max(16, int(1.1 * self.batch / max(float(self.q @ self.means), 1.0)) + 16)
        parts, rem, misses = [], self.batch, 0
        while rem > 0:
            c = self._draw(rng, est)
            c = c[c <= rem]
            if c.size == 0:
                misses += 1
                if misses > 20:  # the law cannot fill this remainder (no small counts): one last row
                    parts.append(np.array([rem], np.int64))
                    break
                continue
            cs = np.cumsum(c)
            k = int(np.searchsorted(cs, rem, side="right"))
            parts.append(c[:k])
            rem -= int(cs[k - 1]) if k else 0
            est = max(16, min(est, 4 * rem // max(int(c.min()), 1) + 16))
        return np.concatenate(parts)

    def _batch(self, k: int) -> np.ndarray:
        rng = np.random.default_rng(self._entropy.tolist() + [k + 1])
        counts = self._counts(rng)
        u = min(counts.size, self.card)
        if u < counts.size:  # more distinct rows than the table has: fold the rest onto the last rows
            extra = counts[u:].sum()
            counts = counts[:u].copy()
            counts[-1] += extra
        if self.carry == "independent":
            rows = rng.choice(self.card, size=u, replace=False)
        else:  # persistent: Efraimidis-Spirakis weighted sampling, weight of hotness rank r is 1/(r+1)
            keys = np.log(rng.random(self.card)) * np.arange(1, self.card + 1, dtype=np.float64)
            top = np.argpartition(-keys, u - 1)[:u] if u < self.card else np.arange(self.card)
            ranks = np.sort(top)  # heaviest (lowest hotness rank) first
            counts = np.sort(counts)[::-1]
            rows = self.ids_of(ranks)
        ids = np.repeat(rows.astype(np.int64), counts)
        rng.shuffle(ids)
        return ids

    def next(self, n: int) -> np.ndarray:
        parts = [self.buf]
        have = self.buf.size
        while have < n:
            b = self._batch(self.k)
            self.k += 1
            parts.append(b)
            have += b.size
        allv = np.concatenate(parts)
        self.buf = allv[n:]
        return allv[:n].copy()


def _geom_ratio(lo: int, hi: int, mean: float) -> float:
    """Ratio ``r`` of the truncated geometric on ``lo+1..hi`` (``hi = -1``: unbounded) with the given mean."""
    if mean <= lo + 1:
        return 0.0
    if hi < 0:
        return (mean - lo - 1) / (mean - lo)
    L = hi - lo
    if L <= 1:
        return 0.0
    mid = lo + (L + 1) / 2.0
    if abs(mean - mid) < 1e-12:
        return 1.0
    if mean >= hi:
        return float("inf")
    g = np.arange(L, dtype=np.float64)

    def mean_of(logr):
        w = g * logr
        w = np.exp(w - w.max())
        return lo + 1 + float((g * w).sum() / w.sum())

    a, b = -50.0, 50.0
    for _ in range(200):
        c = 0.5 * (a + b)
        if mean_of(c) < mean:
            a = c
        else:
            b = c
    return math.exp(0.5 * (a + b))


def _sample_bucket(lo: np.ndarray, hi: np.ndarray, r: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse CDF of the truncated geometric ``P(lo+1+g) ~ r**g``, ``g = 0..hi-lo-1`` (``hi = -1``: open)."""
    out = np.empty(u.shape, np.int64)
    L = np.where(hi < 0, np.inf, (hi - lo).astype(np.float64))
    z = r == 0
    out[z] = lo[z] + 1
    one = r == 1
    out[one] = lo[one] + 1 + np.floor(u[one] * L[one]).astype(np.int64)
    inf = np.isinf(r)
    out[inf] = hi[inf]
    rest = ~(z | one | inf)
    if np.any(rest):
        rr, uu, LL = r[rest], u[rest], L[rest]
        lr = np.log(rr)
        with np.errstate(over="ignore", invalid="ignore"):
            # F(g) = (1 - r^(g+1)) / (1 - r^L); g = floor(log(1 - u (1 - r^L)) / log r)
            rl = np.where(np.isinf(LL), 0.0, np.exp(np.minimum(LL * lr, 700.0)))
            g = np.floor(np.log1p(-uu * (1 - rl)) / lr)
        g = np.where(np.isfinite(g), g, 0)
        g = np.clip(g, 0, np.where(np.isinf(LL), 1e15, LL - 1))
        out[rest] = lo[rest] + 1 + g.astype(np.int64)
    return out


def _bucket_means(edges: np.ndarray, q: np.ndarray, s: np.ndarray, mean_count: float) -> np.ndarray:
    """Mean access count inside each bucket: ``s_k * mean_count / q_k``, clipped to the bucket."""
    lo = edges.astype(np.float64)
    hi = np.concatenate([edges[1:].astype(np.float64), [np.inf]])
    with np.errstate(divide="ignore", invalid="ignore"):
        m = s * mean_count / q
    default = np.where(np.isinf(hi), 2.0 * lo + 1, np.sqrt(np.maximum(lo, 0.5) * hi) + 0.5)
    m = np.where(np.isfinite(m), m, default)
    return np.clip(m, lo + 1, np.where(np.isinf(hi), np.inf, hi))


def make_sampler(node: dict, cardinality: int, seed=None):
    """A stateful sampler of ``node``'s id stream over ``[0, cardinality)``: ``obj.next(n) -> int64 (n,)``.

    ``seed`` is an int, a :class:`numpy.random.SeedSequence` or a :class:`numpy.random.Generator`;
    the same seed gives the same stream, and ``next(a)`` then ``next(b)`` equals ``next(a + b)``.
    """
    validate_node(node, "ids")
    card = _check_card(cardinality)
    kind = node["kind"]
    if kind == "uniform":
        return _UniformSampler(card, seed)
    if kind == "gaussian":
        return _GaussianSampler(node, card, seed)
    if kind == "batch-reuse":
        return _BatchReuseSampler(node, card, seed)
    if kind == "stack-empirical":
        return _StackSampler(card, seed, _SdLaw(node["sd"]), float(node.get("cold", {}).get("rate", 0.0)),
                             None, 0.0)
    # parametric
    pop, sd = node.get("popularity"), node.get("stack_distance")
    if sd is None:
        return _IrmSampler(node, card, seed)
    zipf = _Zipf(float(pop["params"]["a"]), card) if pop is not None else None
    return _StackSampler(card, seed, _SdLaw(sd), float(node.get("cold", {}).get("rate", 0.0)), zipf,
                         float(node.get("irm_share", 0.5)) if zipf is not None else 0.0)


def sample_ids(node: dict, n: int, cardinality: int, rng_or_seed=None) -> np.ndarray:
    """``n`` ids (int64 in ``[0, cardinality)``) of ``node``'s stream in one shot."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise TracegenError(f"number of accesses must be a non-negative integer, got {n!r}")
    return make_sampler(node, cardinality, rng_or_seed).next(int(n))


# ================================================================================================
# importers
# ================================================================================================

def from_dlrm_dist(path) -> dict:
    """A dist.json table entry (``"stack-empirical"``) from the DLRM reference's ``dist_emb_j.log``.

    The reference's depths are 1-based with 0 = cold; we store ``sd = depth - 1`` and the cold
    probability as ``cold.rate``. Only the *count* of the unique ids on its first line is kept (as the
    cardinality), never the ids.
    """
    from tracegen.formats.dlrm import read_dist

    path = os.fspath(path)
    d = read_dist(path)  # validates; already converted to sd = depth - 1 (-1 cold)
    n_unique = int(np.asarray(d.unique_ids).size)  # only the count is kept, never the ids
    depth = np.asarray(d.sd, np.int64) + 1  # back to the file's depth for one code path below
    cum = np.asarray(d.cdf, np.float64)
    if depth.size == 0 or depth.size != cum.size:
        raise TracegenError(f"{depth.size} stack distances but {cum.size} cumulative probabilities", path)
    if np.any(depth < 0):
        raise TracegenError("negative stack distance", path)
    if np.any(np.diff(cum) < -1e-9) or cum[0] < -1e-9 or abs(cum[-1] - 1.0) > 1e-3:
        raise TracegenError("cumulative probabilities must rise to 1", path)
    p = np.diff(np.concatenate([[0.0], cum]))
    p = np.clip(p, 0, None)
    p /= p.sum()
    cold = float(p[depth == 0].sum())
    warm = depth > 0
    sd_vals, inv = np.unique(depth[warm] - 1, return_inverse=True)
    sd_p = np.bincount(inv, weights=p[warm], minlength=sd_vals.size) if sd_vals.size else np.zeros(0)
    if sd_vals.size == 0:  # all cold: a degenerate but valid law
        sd_vals, sd_p = np.zeros(1, np.int64), np.ones(1)
        cold = 1.0
    sd_p = sd_p / sd_p.sum()
    return {
        "name": os.path.splitext(os.path.basename(path))[0],
        "cardinality": int(max(n_unique, 1)),
        "bag_length": {"kind": "constant", "value": 1},
        "ids": {"kind": "stack-empirical",
                "sd": {"kind": "empirical", "values": [int(v) for v in sd_vals],
                       "probs": [float(x) for x in sd_p]},
                "cold": {"rate": cold},
                "source": "dlrm dist_emb log (depth 1-based, 0 = cold) converted to sd = depth - 1"},
    }


def read_locality_records(path) -> list[dict]:
    """Records of a dlrm_datasets locality-stats file (the locality helper's reader when present)."""
    from tracegen.locality import read_locality_stats

    recs = read_locality_stats(path)  # {dataset name: stats}, in file order
    return [_normalise_record(dict(v, name=k)) for k, v in recs.items()]


def _normalise_record(r: dict) -> dict:
    """Our names for one record of :func:`tracegen.locality.read_locality_stats`, plus the file-name facts."""
    out = dict(r)
    out["unique_share"] = [float(x) for x in r["col_size_hist"]]
    out["access_share"] = [float(x) for x in r["index_share"]]
    out["edges"] = [int(x) for x in r["edges"]]
    m = re.match(r"fbgemm_t(\d+)_bs(\d+)", str(r.get("name", "")))
    out["n_tables"] = int(m.group(1)) if m else None
    if not out.get("batch_size"):
        out["batch_size"] = int(m.group(2)) if m else None
    return out


def batch_reuse_from_stats(rec: dict, *, batch_accesses: int, carry: str = "independent") -> dict:
    """A ``"batch-reuse"`` ids node from one locality-stats record.

    The published unique-row histogram is rounded to 3 decimals, so buckets of rows accessed
    thousands of times read ``0.000`` while carrying a few percent of the accesses. The access
    shares are the better-resolved numbers: for a bucket whose unique share is under 0.005 we set
    its mean count to a default inside the bucket (geometric middle; ``2 lo`` for the open last one)
    and derive its unique share from its access share (``q_k = s_k * mean_count / m_k``).
    """
    edges = np.asarray(rec["edges"], np.int64)
    q = np.asarray(rec["unique_share"], np.float64)
    s = np.asarray(rec["access_share"], np.float64)
    if q.size != edges.size or s.size != edges.size:
        raise TracegenError(f"record {rec.get('name')!r}: {edges.size} bucket edges but {q.size} and "
                            f"{s.size} histogram entries")
    s = s / s.sum()
    mean_count = float(rec["avg_indices"]) / float(rec["avg_unique"])
    lo = edges.astype(np.float64)
    hi = np.concatenate([lo[1:], [np.inf]])
    finite_hi = np.where(np.isinf(hi), 1.0, hi)
    default = np.where(np.isinf(hi), 2.0 * lo + 1, np.sqrt(np.maximum(lo, 0.5) * finite_hi) + 0.5)
    small = q < 0.005
    q = q.copy()
    q[small] = s[small] * mean_count / default[small]
    z = float(q.sum())
    # renormalise; scaling the mean count by the same factor keeps every bucket mean s_k c / q_k unchanged
    q, mean_count = q / z, mean_count / z
    return {"kind": "batch-reuse", "batch_accesses": int(batch_accesses), "edges": [int(e) for e in edges],
            "unique_probs": [float(x) for x in q], "access_probs": [float(x) for x in s],
            "mean_count": max(1.0, mean_count), "carry": carry}


def from_locality_stats(path, table: int, *, batch_size: int | None = None, pooling: int | None = None,
                        cardinality: int | None = None, carry: str = "independent") -> dict:
    """A dist.json table entry (``"batch-reuse"``) from record ``table`` of a locality-stats file.

    Each record is one published dataset (all its tables together, one batch). We model one table's
    share of it: ``pooling`` ids per sample (default ``avg_indices / (batch_size * n_tables)`` rounded),
    ``batch_accesses = batch_size * pooling``; ``cardinality`` defaults to 10x the distinct rows of a batch.
    """
    recs = read_locality_records(path)
    if not isinstance(table, (int, np.integer)) or not 0 <= table < len(recs):
        raise TracegenError(f"--table must be in 0..{len(recs) - 1} (the file has {len(recs)} records), "
                            f"got {table}", path)
    rec = recs[int(table)]
    for name, v in (("batch size", batch_size), ("pooling", pooling), ("cardinality", cardinality)):
        if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1):
            raise TracegenError(f"{name} must be an integer >= 1, got {v!r}")
    if cardinality is not None and cardinality >= 1 << 62:
        raise TracegenError(f"cardinality must be < 2**62, got {cardinality}")
    bs = int(batch_size if batch_size is not None else (rec.get("batch_size") or 65536))
    n_tables = int(rec.get("n_tables") or 1)
    if pooling is None:
        per_sample = float(rec["avg_indices"]) / (float(rec.get("batch_size") or bs) * n_tables)
        pooling = max(1, int(round(per_sample)))
    batch_accesses = bs * int(pooling)
    node = batch_reuse_from_stats(rec, batch_accesses=batch_accesses, carry=carry)
    unique_per_batch = batch_accesses / node["mean_count"]
    card = int(cardinality) if cardinality is not None else int(max(1, round(10 * unique_per_batch)))
    if carry == "persistent" and card > PERSISTENT_MAX_CARD:
        raise TracegenError(f"carry 'persistent' draws a hotness key for every row of every batch: "
                            f"cardinality {card} is too large (at most {PERSISTENT_MAX_CARD})")
    node["source"] = {"file": os.path.basename(os.fspath(path)), "record": int(table),
                      "dataset": rec.get("name"), "published_batch_size": rec.get("batch_size"),
                      "published_avg_col_size": rec.get("avg_col_size")}
    return {"name": f"{os.path.splitext(os.path.basename(os.fspath(path)))[0]}_{int(table)}",
            "cardinality": card, "bag_length": {"kind": "constant", "value": int(pooling)}, "ids": node,
            "batch_size": bs}


def spec_document(tables: list[dict], n_samples: int | None = None, comment: str | None = None) -> dict:
    """A complete dist.json document around specified tables (no dense features, no labels)."""
    from tracegen import __version__

    doc = {
        "format": "tracegen-dist",
        "schema_version": 1,
        "created_by": f"tracegen {__version__}",
        "stack_distance_convention": ("0 = immediate repeat, -1 = first access; "
                                      "LRU of C rows hits iff 0 <= sd < C"),
        "source": {"n_samples": n_samples, "n_tables": len(tables), "specified": True},
        "params": {},
        "privacy": {"raw_ids": False, "first_appearance_order": False, "min_count": None, "dp": None},
        "tables": tables,
        "dense": None,
        "labels": None,
    }
    if comment:
        doc["comment"] = comment
    return doc
