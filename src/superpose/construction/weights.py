"""Weight formulas: one function per layer, each filling a ``Block`` of the model by hand.

Every function's docstring says the layer's job, which residual-stream coordinates (named in
``Layout``) it reads and which it writes. Symbols used below:

    V      number of symbols (digits 0..V-1); token ids V = BOS and V+1 = SEP
    K      number of tasks f_0..f_{K-1}, each a map {0..V-1} -> {0..V-1}
    m      most in-context examples the model is built for; a prompt is
           BOS x1 y1 SEP x2 y2 SEP ... xm ym SEP xq   (n = 3 tokens per example, N = 3m + 2)
    L      ceil(log2 N) frequencies of the position code p_t = [cos(2 pi t/2^f), sin(2 pi t/2^f)]_f
    beta_pos, beta_avg, S, eta   the saturation constants of ``ConstructionSpec`` (see there)

Position code fact used by layers 1, 2 and 5: for 0 < |t - u| < 2^L, p_t . p_u <= L - 2 while
p_t . p_t = L (the frequency 2^(a+1), with 2^a the largest power of two dividing t - u, gives
cos = -1). So a score beta * p_target . p_u puts weight >= 1 - N exp(-2 beta) on the target.
Shifting by one position is a rotation of each (cos, sin) pair, hence linear: p_{t-1} = p_t M.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from superpose.construction.model import MLP, Attention, Block, ConstructedTransformer
from superpose.construction.tasks import MapTask
from superpose.errors import SuperposeError

TOKENS_PER_EXAMPLE = 3  # x, y, SEP: the "n" of the bound
N_LAYERS = 7


@dataclass(frozen=True)
class Layout:
    """Named slices of the residual stream, in order."""

    sizes: tuple[tuple[str, int], ...]

    @property
    def slots(self) -> dict[str, slice]:
        """Feature name -> coordinate slice."""
        out, start = {}, 0
        for name, size in self.sizes:
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def d_model(self) -> int:
        """Total width of the residual stream."""
        return sum(size for _, size in self.sizes)

    def __getitem__(self, name: str) -> slice:
        """Coordinate slice of feature ``name``."""
        return self.slots[name]

    def at(self, name: str, i: int = 0) -> int:
        """Coordinate of entry i of feature ``name``."""
        s = self.slots[name]
        if not 0 <= i < s.stop - s.start:
            raise IndexError(f"{name}[{i}] outside a slot of width {s.stop - s.start}")
        return s.start + i


@dataclass(frozen=True)
class ConstructionSpec:
    """What to build: tasks, vocabulary, most examples, and the saturation constants.

    beta_pos  scale of position-matching heads (layers 1, 2, 5); leak <= N exp(-2 beta_pos)
    beta_avg  scale of the averaging head (layer 4); leak onto non-fitting tokens <= N exp(-beta_avg)
    floor     logit S given to tokens that should get probability 0; their mass <= (V+2) exp(-S)
    log_tol   eta, the largest error of the piecewise-linear log in layer 7 (in nats)
    """

    tasks: tuple[MapTask, ...]
    vocab: int
    max_examples: int
    beta_pos: float = 30.0
    beta_avg: float = 40.0
    floor: float = 40.0
    log_tol: float = 1e-5

    def __post_init__(self) -> None:
        if self.max_examples < 1:
            raise SuperposeError(f"examples (m) must be at least 1; got {self.max_examples}")
        if not self.tasks:
            raise SuperposeError("tasks: give at least one task")
        if self.log_tol <= 0 or self.log_tol > 1e-3:
            raise SuperposeError(f"log_tol must be in (0, 1e-3]; got {self.log_tol}")

    @property
    def k(self) -> int:
        """Number of tasks K."""
        return len(self.tasks)

    @property
    def bos(self) -> int:
        """Token id of the beginning-of-sequence marker."""
        return self.vocab

    @property
    def sep(self) -> int:
        """Token id of the separator that ends each example."""
        return self.vocab + 1

    @property
    def max_len(self) -> int:
        """Longest prompt: BOS, m examples of 3 tokens, the query."""
        return TOKENS_PER_EXAMPLE * self.max_examples + 2

    @property
    def n_freq(self) -> int:
        """L = ceil(log2 N): enough frequencies that no two positions share a code."""
        return max(1, math.ceil(math.log2(self.max_len)))

    @property
    def layout(self) -> Layout:
        """The residual stream of this construction."""
        V, K = self.vocab, self.k
        sizes = [("tok", V + 2), ("pos", 2 * self.n_freq), ("prev_digit", 1), ("is_x", 1),
                 ("is_y", 1)]
        sizes += [(f"ans{k}", V) for k in range(K)]
        sizes += [("cls", K), ("fit", 1), ("share", K)]
        sizes += [(f"qans{k}", V) for k in range(K)]
        sizes += [("mix", V), ("logit", V)]
        return Layout(tuple(sizes))

    def log_breakpoints(self) -> list[float]:
        """Breakpoints 0, 1/m, ..., 1 of the piecewise-linear log (geometric above 1/m)."""
        ratio = chord_ratio(self.log_tol)
        m = self.max_examples
        segments = math.ceil(math.log(m) / math.log(ratio)) if m > 1 else 0
        # Spread the segments evenly in log-space so the top breakpoint is exactly 1.
        return [0.0] + [m ** (j / segments - 1) if segments else 1.0 for j in range(segments + 1)]

    def error_bound(self) -> float:
        """Bound on |P(answer of task k) - share_k| from the saturation constants."""
        N, V = self.max_len, self.vocab
        upstream = 4 * N * math.exp(-2 * self.beta_pos) + 2 * N * math.exp(-self.beta_avg)
        return math.expm1(self.log_tol + upstream) + (V + 2) * math.exp(-self.floor)


def chord_error(ratio: float) -> float:
    """Largest gap between log t and its chord on [a, ratio * a] (independent of a)."""
    if ratio <= 1:
        return 0.0
    t = (ratio - 1) / math.log(ratio)  # where the gap peaks, relative to a
    return math.log(t) - (t - 1) * math.log(ratio) / (ratio - 1)


def chord_ratio(tol: float) -> float:
    """Largest breakpoint ratio whose chord error is at most ``tol`` (bisection)."""
    lo, hi = 1.0, 2.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chord_error(mid) <= tol else (lo, mid)
    return lo


def _shift_back(n_freq: int) -> torch.Tensor:
    """Matrix M with p_{t-1} = p_t M (a rotation of each (cos, sin) pair)."""
    M = torch.zeros(2 * n_freq, 2 * n_freq, dtype=torch.float64)
    for f in range(n_freq):
        w = 2 * math.pi / 2.0 ** (f + 1)
        c, s = math.cos(w), math.sin(w)
        i = 2 * f
        M[i:i + 2, i:i + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return M


def _attend_to(attn: Attention, head: int, spec: ConstructionSpec, offset: int) -> None:
    """Make ``head`` attend to the position ``offset`` back (0 = itself, 1 = the previous one)."""
    pos = spec.layout["pos"]
    M = torch.eye(2 * spec.n_freq, dtype=torch.float64)
    for _ in range(offset):
        M = M @ _shift_back(spec.n_freq)
    attn.w_q[head, pos, :] = spec.beta_pos * M  # q_t = beta * p_{t - offset}
    attn.w_k[head, pos, :] = torch.eye(2 * spec.n_freq, dtype=torch.float64)  # k_u = p_u


def embedding(model: ConstructedTransformer, spec: ConstructionSpec) -> None:
    """Embedding: writes tok (one-hot of the token, V+2 wide) and pos (the code p_t, 2L wide)."""
    lay = spec.layout
    model.tok_emb[:, lay["tok"]] = torch.eye(spec.vocab + 2, dtype=torch.float64)
    model.pos_emb[:, lay["pos"]] = torch.eye(2 * spec.n_freq, dtype=torch.float64)


def layer1_mark_boundaries(spec: ConstructionSpec) -> Block:
    """Layer 1, mark example boundaries. Reads tok, pos; writes prev_digit, is_x, is_y.

    Attention (1 head, previous position): prev_digit = [token t-1 is a symbol, not BOS/SEP].
    MLP (2 units): is_y = relu(is_digit + prev_digit - 1)   (a symbol after a symbol: an answer)
                   is_x = relu(is_digit - prev_digit)       (a symbol after BOS/SEP: an input,
                                                             so the query xq is an x position)
    where is_digit = sum of tok[0..V-1]. Both are exact on 0/1 inputs.
    """
    lay, V, d = spec.layout, spec.vocab, spec.layout.d_model
    attn = Attention(d, n_heads=1, d_qk=2 * spec.n_freq, d_v=1)
    _attend_to(attn, 0, spec, offset=1)
    attn.w_v[0, lay.at("tok", 0):lay.at("tok", V - 1) + 1, 0] = 1.0
    attn.w_o[0, 0, lay.at("prev_digit")] = 1.0
    mlp = MLP(d, 2)
    digits = slice(lay.at("tok", 0), lay.at("tok", V - 1) + 1)
    mlp.fc.weight[0, digits] = 1.0
    mlp.fc.weight[0, lay.at("prev_digit")] = 1.0
    mlp.fc.bias[0] = -1.0
    mlp.fc.weight[1, digits] = 1.0
    mlp.fc.weight[1, lay.at("prev_digit")] = -1.0
    mlp.proj.weight[lay.at("is_y"), 0] = 1.0
    mlp.proj.weight[lay.at("is_x"), 1] = 1.0
    return Block(attn, mlp, job="mark example boundaries (is_x, is_y)")


def layer2_example_answers(spec: ConstructionSpec) -> Block:
    """Layer 2, every task's answer for every example. Reads tok, pos; writes ans0..ans{K-1}.

    Head k attends to the previous position and copies its symbol through task k's map:
    value = tok[0..V-1] of token t-1, output ans_k[f_k(v)] += value[v]. At an answer position
    (is_y) ans_k = onehot(f_k(x_i)); after BOS/SEP it is 0 (those are not symbols).
    """
    return _task_map_heads(spec, offset=1, target="ans", job="each task's answer for each example (head k = task k)")


def layer3_classify_examples(spec: ConstructionSpec) -> Block:
    """Layer 3, decide which task each example follows. Reads ans*, tok, is_y; writes cls, fit.

    MLP unit (k, v) = relu(ans_k[v] + tok[v] + is_y - 2) is 1 exactly when the example's answer
    y_i = v equals f_k(x_i) = v at an answer position, so cls_k = sum_v unit(k, v) = [y_i = f_k(x_i)]
    and fit = sum_k cls_k = [the example fits some task] (0 for noise examples).
    """
    lay, V, K, d = spec.layout, spec.vocab, spec.k, spec.layout.d_model
    mlp = MLP(d, K * V)
    for k in range(K):
        for v in range(V):
            u = k * V + v
            mlp.fc.weight[u, lay.at(f"ans{k}", v)] = 1.0
            mlp.fc.weight[u, lay.at("tok", v)] = 1.0
            mlp.fc.weight[u, lay.at("is_y")] = 1.0
            mlp.fc.bias[u] = -2.0
            mlp.proj.weight[lay.at("cls", k), u] = 1.0
            mlp.proj.weight[lay.at("fit"), u] = 1.0
    return Block(None, mlp, job="which task each example follows (cls, fit)")


def layer4_average(spec: ConstructionSpec) -> Block:
    """Layer 4, average the task indicators over the examples. Reads fit, cls; writes share.

    One head with a constant query (bias 1) and key beta_avg * fit: it spreads its attention
    evenly over the M earlier positions whose example fits a task (noise examples, inputs and
    separators score 0 and get weight <= exp(-beta_avg) each). Value = cls, so
    share_k = (#examples of task k) / M. With no fitting example, every value is 0 and share = 0.
    """
    lay, K, d = spec.layout, spec.k, spec.layout.d_model
    attn = Attention(d, n_heads=1, d_qk=1, d_v=K)
    attn.b_q[0, 0] = 1.0
    attn.w_k[0, lay.at("fit"), 0] = spec.beta_avg
    for k in range(K):
        attn.w_v[0, lay.at("cls", k), k] = 1.0
        attn.w_o[0, k, lay.at("share", k)] = 1.0
    return Block(attn, None, job="average task indicators over fitting examples (share)")


def layer5_query_answers(spec: ConstructionSpec) -> Block:
    """Layer 5, every task's answer on the query. Reads tok, pos; writes qans0..qans{K-1}.

    Head k attends to its own position and maps the symbol there through task k:
    qans_k = onehot(f_k(x)) at every symbol position, in particular at the query xq.
    """
    return _task_map_heads(spec, offset=0, target="qans", job="each task's answer on the query (head k = task k)")


def _task_map_heads(spec: ConstructionSpec, offset: int, target: str, job: str) -> Block:
    """K heads: head k attends ``offset`` positions back and writes task k's map of the symbol there,
    one-hot, into ``{target}{k}`` (layers 2 and 5 differ only in where they look and write)."""
    lay, V, d = spec.layout, spec.vocab, spec.layout.d_model
    attn = Attention(d, n_heads=spec.k, d_qk=2 * spec.n_freq, d_v=V)
    for k, task in enumerate(spec.tasks):
        _attend_to(attn, k, spec, offset=offset)
        for v in range(V):
            attn.w_v[k, lay.at("tok", v), v] = 1.0
            attn.w_o[k, v, lay.at(f"{target}{k}", task(v))] = 1.0
    return Block(attn, None, job=job)


def layer6_mix(spec: ConstructionSpec) -> Block:
    """Layer 6, mix the query answers by the shares. Reads share, qans*, is_x; writes mix.

    MLP unit (k, v) = relu(share_k + qans_k[v] + is_x - 2) equals share_k * qans_k[v] * is_x
    exactly, because share_k is in [0, 1] and the other two are 0/1. So at the query
    mix[v] = sum_k share_k [f_k(xq) = v], a probability vector over the V symbols.
    """
    lay, V, K, d = spec.layout, spec.vocab, spec.k, spec.layout.d_model
    mlp = MLP(d, K * V)
    for k in range(K):
        for v in range(V):
            u = k * V + v
            mlp.fc.weight[u, lay.at("share", k)] = 1.0
            mlp.fc.weight[u, lay.at(f"qans{k}", v)] = 1.0
            mlp.fc.weight[u, lay.at("is_x")] = 1.0
            mlp.fc.bias[u] = -2.0
            mlp.proj.weight[lay.at("mix", v), u] = 1.0
    return Block(None, mlp, job="mix the query answers by the shares (mix)")


def layer7_log(spec: ConstructionSpec) -> Block:
    """Layer 7, turn the mixture into logits. Reads mix; writes logit.

    logit[v] = g(mix[v]) where g is piecewise linear through (0, -S) and (t, log t) at the
    breakpoints 1/m = t_1 < ... < t_J = 1 (geometric, ratio r with chord error <= eta):
    g(t) = -S + sum_j c_j relu(t - t_j), one unit per breakpoint and symbol. Every nonzero mix
    value is a multiple of 1/M >= 1/m, so g(mix) is within eta of log(mix) and the softmax of
    the logits is the mixture up to exp(eta) - 1 (see ConstructionSpec.error_bound).
    """
    lay, V, d = spec.layout, spec.vocab, spec.layout.d_model
    t = spec.log_breakpoints()
    values = [-spec.floor] + [math.log(x) for x in t[1:]]
    slopes = [(values[j + 1] - values[j]) / (t[j + 1] - t[j]) for j in range(len(t) - 1)]
    coeff = [slopes[0]] + [slopes[j] - slopes[j - 1] for j in range(1, len(slopes))]
    n_units = len(coeff)  # the last breakpoint (t = 1) needs no unit: mix never exceeds 1
    mlp = MLP(d, V * n_units)
    # Unit u = v * n_units + j computes relu(mix[v] - t_j); filled block by block for speed.
    breaks = torch.tensor(t[:n_units], dtype=torch.float64)
    slopes_t = torch.tensor(coeff, dtype=torch.float64)
    for v in range(V):
        units = slice(v * n_units, (v + 1) * n_units)
        mlp.fc.weight[units, lay.at("mix", v)] = 1.0
        mlp.fc.bias[units] = -breaks
        mlp.proj.weight[lay.at("logit", v), units] = slopes_t
        mlp.proj.bias[lay.at("logit", v)] = -spec.floor
    return Block(None, mlp, job="logits = piecewise-linear log of the mixture")


def unembedding(model: ConstructedTransformer, spec: ConstructionSpec) -> None:
    """Unembedding: symbol v's logit is residual logit[v]; BOS and SEP get -2S (never predicted)."""
    lay = spec.layout
    for v in range(spec.vocab):
        model.unembed.weight[v, lay.at("logit", v)] = 1.0
    model.unembed.bias[spec.bos] = -2 * spec.floor
    model.unembed.bias[spec.sep] = -2 * spec.floor


LAYER_FORMULAS = (layer1_mark_boundaries, layer2_example_answers, layer3_classify_examples,
                  layer4_average, layer5_query_answers, layer6_mix, layer7_log)


def build_transformer(spec: ConstructionSpec) -> ConstructedTransformer:
    """The transformer of the construction, every weight set by the formulas above."""
    blocks = [formula(spec) for formula in LAYER_FORMULAS]
    model = ConstructedTransformer(vocab_size=spec.vocab + 2, d_model=spec.layout.d_model,
                                   max_len=spec.max_len, n_freq=spec.n_freq, blocks=blocks)
    embedding(model, spec)
    unembedding(model, spec)
    return model.eval()


def dimension_formula(vocab: int, k: int, examples: int) -> int:
    """d_model = (2K + 3) d + 2 ceil(log2(n m + 2)) + 2K + 6, with d = V and n = 3."""
    n_freq = max(1, math.ceil(math.log2(TOKENS_PER_EXAMPLE * examples + 2)))
    return (2 * k + 3) * vocab + 2 * n_freq + 2 * k + 6
