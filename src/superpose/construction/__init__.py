"""A hand-built transformer that performs K tasks in superposition (the study's Section 5).

No weight here is trained: ``weights.py`` sets each one by a formula, and ``model.py`` is a
plain PyTorch transformer (attention + MLP blocks on a residual stream) that runs them.

The tasks. K maps f_1..f_K from the symbols {0..V-1} to themselves (``tasks.py``: plus_k,
minus_k, times_k, const_k, mirror, square). A prompt holds m examples and a query::

    BOS x1 y1 SEP x2 y2 SEP ... xm ym SEP xq          (n = 3 tokens per example, N = 3m + 2)

Example i *fits* task k when y_i = f_k(x_i). Let c_k be the number of examples that fit task k
and M = sum_k c_k (examples that fit no task are *noise* and are left out). The claim, checked
by the tests for K = 2, 3, 4: the model's next-token distribution after xq satisfies

    P(f_k(xq)) = c_k / M        for every k, to within 1e-5 (tests hold it to 1e-3),

provided every example fits at most one task and the K answers f_k(xq) differ
(``prompts.check_prompt`` rejects other prompts). With M = 0 (all noise) the output is uniform
over the V symbols.

The residual stream (``weights.Layout``; d = V symbols, L = ceil(log2 N)):

    tok        V+2  one-hot token                      pos      2L  position code p_t
    prev_digit 1    token t-1 is a symbol              is_x, is_y   1+1  input / answer position
    ans_k      V    onehot f_k(x_i) at answer y_i      cls      K   example fits task k
    fit        1    example fits some task             share    K   c_k / M
    qans_k     V    onehot f_k(xq) at the query        mix      V   sum_k share_k onehot f_k(xq)
    logit      V    log mix (piecewise linear)

so d_model = (2K + 3) d + 2 ceil(log2(3m + 2)) + 2K + 6 = O(d + log(mn)) for fixed K.

The position code p_t = [cos(2 pi t / 2^f), sin(2 pi t / 2^f)] for f = 1..L has p_t . p_t = L and
p_t . p_u <= L - 2 for any other position u < 2^L, and p_{t-1} is a fixed rotation of p_t. So a
head with query beta_pos * p_{t-j} and key p_u attends to position t - j with weight
1 - O(N exp(-2 beta_pos)): that is how heads read "the previous token" or "this token".

The seven layers (one step of the argument each; K heads at most per layer):

    1  mark boundaries    1 head reads whether token t-1 is a symbol; MLP: is_y = symbol after
                          a symbol, is_x = symbol after BOS/SEP (the query is an x position)
    2  example answers    head k reads x_i from the previous position and writes onehot f_k(x_i)
    3  classify examples  MLP: cls_k = sum_v relu(ans_k[v] + tok[v] + is_y - 2) = [y_i = f_k(x_i)]
    4  average            1 head, key beta_avg * fit, value cls: uniform over the M fitting
                          examples, so share_k = c_k / M (noise has key 0: weight <= exp(-beta_avg))
    5  query answers      head k reads xq at its own position and writes onehot f_k(xq)
    6  mix                MLP: mix[v] = sum_k relu(share_k + qans_k[v] + is_x - 2)
                                   = sum_k share_k [f_k(xq) = v]   (exact: share in [0, 1])
    7  log                MLP: logit[v] = g(mix[v]), g piecewise linear through (0, -S) and
                          (t, log t) at geometric breakpoints 1/m .. 1 with chord error <= eta

The unembedding reads ``logit`` (BOS and SEP get -2S), so softmax(logits)[f_k(xq)] =
share_k * exp(e_k) / Z with every |e_k| <= eta: the error is at most exp(eta) - 1 plus
(V + 2) exp(-S) for the zero-probability tokens plus the attention leaks above. With the defaults
(beta_pos = 30, beta_avg = 40, S = 40, eta = 1e-5) the bound is about 1e-5 and the measured
error about 2e-6. The only approximations are these three saturations and the piecewise-linear
log; layers 1, 3 and 6 are exact on their inputs.
"""

from superpose.construction.model import ConstructedTransformer
from superpose.construction.prompts import SymbolPrompt, check_prompt, sample_prompt
from superpose.construction.scoring import predict, score_prompts
from superpose.construction.tasks import MapTask, default_tasks, parse_tasks
from superpose.construction.weights import ConstructionSpec, Layout, build_transformer, dimension_formula

__all__ = ["ConstructedTransformer", "ConstructionSpec", "Layout", "MapTask", "SymbolPrompt", "build_transformer",
           "check_prompt", "default_tasks", "dimension_formula", "parse_tasks", "predict", "sample_prompt",
           "score_prompts"]
