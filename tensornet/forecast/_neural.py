"""Neural forecasters: the shared training loop and the seq2seq TT-LSTM / LSTM models."""

from __future__ import annotations

import copy
import json
import logging
import math

import numpy as np
import torch
from torch import nn

from .._validation import check_float, check_int, check_option, check_random_state
from ._base import BaseForecaster
from ._data import window_starts

logger = logging.getLogger(__name__)

__all__ = ["NeuralForecaster", "TTLSTMForecaster", "LSTMForecaster"]

_WINDOW_NORMS = ("last", "mean", "none")


# ---------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------

class _ForecastNet(nn.Module):
    """Window normalisation around a scaled-space model.

    ``forward(enc, dec_cov, n, target=None, tf_prob=0, generator=None)``:
    ``enc`` (B, L, k + m) holds scaled targets then covariates, ``dec_cov``
    (B, n, m) the covariates of the forecast steps; returns (B, n, k).
    ``highway=(L, H)`` adds a linear map from each channel's (normalised)
    look-back window to its next H values, shared by the channels, to the
    network's output (an autoregressive skip connection, as in LSTNet).
    """

    def __init__(self, n_out: int, window_norm: str, highway=None):
        super().__init__()
        self.n_out = n_out
        self.window_norm = window_norm
        self.highway = None if highway is None else nn.Linear(*highway)

    def forward(self, enc, dec_cov, n, target=None, tf_prob=0.0, generator=None):
        k = self.n_out
        if self.window_norm == "none":
            level = None
        else:
            y = enc[..., :k]
            level = y[:, -1:] if self.window_norm == "last" else y.mean(dim=1, keepdim=True)
            enc = torch.cat([y - level, enc[..., k:]], dim=-1)
            if target is not None:
                target = target - level
        out = self._run(enc, dec_cov, n, target, tf_prob, generator)
        if self.highway is not None:
            if n > self.highway.out_features:
                raise ValueError(f"n must be at most the horizon {self.highway.out_features} "
                                 f"with a highway; got n={n}")
            skip = self.highway(enc[..., :k].transpose(1, 2)).transpose(1, 2)
            out = out + skip[:, :n]
        return out if level is None else out + level

    def _reset_highway(self):
        if self.highway is not None:  # starts as the plain network
            with torch.no_grad():
                self.highway.weight.zero_()
                self.highway.bias.zero_()

    def _run(self, enc, dec_cov, n, target, tf_prob, generator):  # pragma: no cover
        raise NotImplementedError


def _feed_back(pred, target, j, tf_prob, generator):
    """Decoder input for the next step: own prediction, or (scheduled sampling) the truth."""
    if target is None or tf_prob <= 0.0:
        return pred
    B = pred.shape[0]
    use_true = torch.rand(B, 1, generator=generator) < tf_prob
    return torch.where(use_true.to(pred.device), target[:, j], pred)


class _TTSeq2Seq(_ForecastNet):
    def __init__(self, n_out, n_cov, hidden_size, lags, order, rank, window_norm,
                 decoder_rank=None, highway=None):
        super().__init__(n_out, window_norm, highway)
        from ..nn import TTLSTM, TTLSTMCell

        self.encoder = TTLSTM(n_out + n_cov, hidden_size, lags, order, rank)
        self.decoder = TTLSTMCell(n_out + n_cov, hidden_size, lags, order,
                                  rank if decoder_rank is None else decoder_rank)
        self.head = nn.Linear(hidden_size, n_out)

    def _run(self, enc, dec_cov, n, target, tf_prob, generator):
        _, (h_lags, c) = self.encoder(enc)
        cell = self.decoder
        hs = list(h_lags.unbind(1))                   # decoder starts from the last L states
        packed = cell._packed()
        prev = enc[:, -1, :self.n_out]
        cov = dec_cov.unbind(1)
        ones = prev.new_ones(prev.shape[0], 1)
        outs = []
        for j in range(n):
            inp = torch.cat([prev, cov[j]], dim=1) if cov[j].shape[1] else prev
            h, c = cell._step(cell._input_projection(inp), hs, c, packed, ones)
            hs = [h] + hs[:-1]
            y = self.head(h)
            outs.append(y)
            prev = _feed_back(y, target, j, tf_prob, generator)
        return torch.stack(outs, dim=1)

    def reset_parameters(self, generator):
        self.encoder.reset_parameters(generator)
        self.decoder.reset_parameters(generator)
        _init_linear(self.head, generator)
        self._reset_highway()


class _LSTMSeq2Seq(_ForecastNet):
    def __init__(self, n_out, n_cov, hidden_size, num_layers, window_norm, highway=None):
        super().__init__(n_out, window_norm, highway)
        self.encoder = nn.LSTM(n_out + n_cov, hidden_size, num_layers=num_layers,
                               batch_first=True)
        self.decoder = nn.LSTM(n_out + n_cov, hidden_size, num_layers=num_layers,
                               batch_first=True)
        self.head = nn.Linear(hidden_size, n_out)

    def _run(self, enc, dec_cov, n, target, tf_prob, generator):
        _, state = self.encoder(enc)
        prev = enc[:, -1, :self.n_out]
        cov = dec_cov.unbind(1)
        outs = []
        for j in range(n):
            inp = torch.cat([prev, cov[j]], dim=1) if cov[j].shape[1] else prev
            h, state = self.decoder(inp.unsqueeze(1), state)
            y = self.head(h[:, 0])
            outs.append(y)
            prev = _feed_back(y, target, j, tf_prob, generator)
        return torch.stack(outs, dim=1)

    def reset_parameters(self, generator):
        for lstm in (self.encoder, self.decoder):
            bound = 1.0 / math.sqrt(lstm.hidden_size)
            with torch.no_grad():
                for p in lstm.parameters():
                    p.uniform_(-bound, bound, generator=generator)
        _init_linear(self.head, generator)
        self._reset_highway()


@torch.no_grad()
def _init_linear(layer: nn.Linear, generator):
    bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features else 0.0
    layer.weight.uniform_(-bound, bound, generator=generator)
    if layer.bias is not None:
        layer.bias.uniform_(-bound, bound, generator=generator)


# ---------------------------------------------------------------------------
# training loop shared by every neural forecaster
# ---------------------------------------------------------------------------

_OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "linbreg", "adabreg", "proxsgd")


def _optimizer_class(name: str):
    from .. import optim as tn_optim

    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
            "linbreg": tn_optim.LinBreg, "adabreg": tn_optim.AdaBreg,
            "proxsgd": tn_optim.ProxSGD}[name]


def _optimizer_name(optimizer):
    """The name under which ``optimizer`` can be saved, or None."""
    if optimizer is None:
        return None
    if isinstance(optimizer, str):
        return optimizer.lower()
    for name in _OPTIMIZER_NAMES:
        if optimizer is _optimizer_class(name):
            return name
    return None


def _is_rank_reg(reg) -> bool:
    from ..optim import RankL1

    return isinstance(reg, RankL1) or (isinstance(reg, dict) and reg.get("name") == "RankL1")


def _make_optimizer(spec, kwargs, net, lr, weight_decay):
    """Build the optimizer of ``net`` from the forecaster's ``optimizer`` parameters."""
    kwargs = dict(kwargs or {})
    if spec is None:
        return torch.optim.Adam(net.parameters(), **{"lr": lr, "weight_decay": weight_decay,
                                                     **kwargs})
    if isinstance(spec, str):
        spec = _optimizer_class(spec.lower())
    if isinstance(spec, type):
        kwargs = {"lr": lr, **kwargs}
        if weight_decay > 0 and "weight_decay" not in kwargs:
            kwargs["weight_decay"] = weight_decay
        params = net.parameters()
        from ..optim._bregman import _RegularizedOptimizer

        if issubclass(spec, _RegularizedOptimizer) and _is_rank_reg(kwargs.get("reg")):
            from ..optim import rank_param_groups, regularizer_from_config

            reg = kwargs.pop("reg")
            if isinstance(reg, dict):
                reg = regularizer_from_config(reg)
            params = rank_param_groups(net, reg=reg)
        try:
            opt = spec(params, **kwargs)
        except TypeError as e:
            raise TypeError(f"optimizer {spec.__name__} does not accept optimizer_kwargs "
                            f"{sorted(kwargs)} (with lr from the lr parameter"
                            f"{' and weight_decay' if 'weight_decay' in kwargs else ''}): "
                            f"{e}") from None
    else:
        opt = spec(net)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError("optimizer, when a callable, must return a torch.optim.Optimizer for "
                        f"the network it is given; it returned {type(opt).__name__}")
    return opt


def _json_kwargs(kwargs):
    """``optimizer_kwargs`` in a JSON-safe form (regularizers as their configs), or None."""
    if kwargs is None:
        return None
    out = {}
    for k, v in kwargs.items():
        if hasattr(v, "to_config"):
            v = v.to_config()
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            logger.warning("optimizer_kwargs[%r] = %r is not saved (not JSON)", k, v)
            continue
        out[k] = v
    return out


class NeuralForecaster(BaseForecaster):
    """Training loop: Adam (or the ``optimizer`` given) on the MSE of scaled windows,
    early stopping, seeds.

    Subclasses define ``_build_net(n_features, n_covariates)`` and may extend
    ``_check_params``.
    """

    _fitted_attr = "net_"
    _teacher_forcing = False
    highway = False  # a constructor parameter of the recurrent forecasters only

    def _check_params(self):
        self._check_common()
        check_int(self.epochs, "epochs", min_value=1)
        check_int(self.batch_size, "batch_size", min_value=1)
        check_float(self.lr, "lr", min_value=0.0, min_inclusive=False)
        check_float(self.weight_decay, "weight_decay", min_value=0.0)
        check_int(self.patience, "patience", min_value=1)
        if self.grad_clip is not None:
            check_float(self.grad_clip, "grad_clip", min_value=0.0, min_inclusive=False)
        if self.max_windows is not None:
            check_int(self.max_windows, "max_windows", min_value=1)
        check_option(self.window_norm, "window_norm", _WINDOW_NORMS)
        if not isinstance(self.highway, (bool, np.bool_)):
            raise TypeError(f"highway must be True or False; got {self.highway!r}")
        if not isinstance(self.device, (str, torch.device)):
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got "
                            f"{self.device!r}")
        if self._teacher_forcing:
            check_float(self.scheduled_sampling, "scheduled_sampling", min_value=0.0,
                        max_value=1.0)
        check_random_state(self.random_state)
        opt = self.optimizer
        if isinstance(opt, str):
            check_option(opt.lower(), "optimizer", _OPTIMIZER_NAMES)
        elif isinstance(opt, type):
            if not issubclass(opt, torch.optim.Optimizer):
                raise TypeError("optimizer must be None, a name "
                                f"({', '.join(_OPTIMIZER_NAMES)}), a torch.optim.Optimizer "
                                f"subclass or a callable net -> optimizer; got class "
                                f"{opt.__name__}")
        elif opt is not None and not callable(opt):
            raise TypeError("optimizer must be None, a name "
                            f"({', '.join(_OPTIMIZER_NAMES)}), a torch.optim.Optimizer "
                            f"subclass or a callable net -> optimizer; got {opt!r}")
        kw = self.optimizer_kwargs
        if kw is not None:
            if not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw):
                raise TypeError("optimizer_kwargs must be None or a dict of keyword arguments "
                                f"for the optimizer; got {kw!r}")
            if opt is not None and not isinstance(opt, (str, type)):
                raise ValueError("optimizer_kwargs is only used with an optimizer name or "
                                 "class; a callable optimizer builds its own (got "
                                 f"optimizer_kwargs={kw!r})")

    def _highway_shape(self):
        return (self.lookback, self.horizon) if self.highway else None

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**62))
        return int(check_random_state(rs).integers(2**62))

    def _new_net(self, generator):
        net = self._build_net(self.n_features_in_, self.n_covariates_)
        net.reset_parameters(generator)
        return net.to(self.device)

    @property
    def n_parameters_(self) -> int:
        """Number of learned parameters of the fitted network."""
        self._check_is_fitted()
        return sum(p.numel() for p in self.net_.parameters())

    def count_parameters(self, n_features: int = 1, n_covariates: int = 0) -> int:
        """Parameters this configuration has for the given input widths (no fitting)."""
        self._check_params()
        n_features = check_int(n_features, "n_features", min_value=1)
        n_covariates = check_int(n_covariates, "n_covariates", min_value=0)
        return sum(p.numel() for p in self._build_net(n_features, n_covariates).parameters())

    def _fit_scaled(self, train, val):
        device = torch.device(self.device)
        seed = self._seed()
        g = torch.Generator().manual_seed(seed)
        net = self._new_net(g)
        k = self.n_features_in_
        L, H = self.lookback, self.horizon
        W = L + H
        data = torch.as_tensor(np.concatenate(train), dtype=torch.float32, device=device)
        starts = torch.as_tensor(window_starts([len(a) for a in train], W))
        if len(starts) == 0:
            raise ValueError(f"no training window of lookback + horizon = {W} steps fits in the "
                             "training data")
        if val:
            vdata = torch.as_tensor(np.concatenate(val), dtype=torch.float32, device=device)
            vstarts = torch.as_tensor(window_starts([len(a) for a in val], W))
        else:
            vdata, vstarts = None, torch.zeros(0, dtype=torch.long)
        offs = torch.arange(W)
        self._prepare_net(net)
        opt = _make_optimizer(self.optimizer, self.optimizer_kwargs, net, self.lr,
                              self.weight_decay)

        def split(w):
            return w[:, :L], w[:, L:, k:], w[:, L:, :k]

        def val_loss():
            net.eval()
            total, count = 0.0, 0
            with torch.no_grad():
                for i in range(0, len(vstarts), 1024):
                    w = vdata[(vstarts[i:i + 1024, None] + offs).to(device)]
                    enc, cov, tgt = split(w)
                    pred = net(enc, cov, H)
                    total += float(((pred - tgt) ** 2).sum())
                    count += tgt.numel()
            return total / max(count, 1)

        history = {"train_loss": [], "val_loss": []}
        best, best_state, best_epoch, bad = math.inf, None, 0, 0
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, desc=type(self).__name__, unit="epoch", leave=False)
        n_use = len(starts) if self.max_windows is None else min(self.max_windows, len(starts))
        try:
            for epoch in range(self.epochs):
                net.train()
                tf = 0.0
                if self._teacher_forcing and self.scheduled_sampling > 0:
                    tf = self.scheduled_sampling * max(0.0, 1.0 - epoch / max(1, self.epochs - 1))
                perm = torch.randperm(len(starts), generator=g)[:n_use]
                run, seen = 0.0, 0
                for i in range(0, n_use, self.batch_size):
                    idx = starts[perm[i:i + self.batch_size]]
                    w = data[(idx[:, None] + offs).to(device)]
                    enc, cov, tgt = split(w)
                    pred = net(enc, cov, H, target=tgt if tf > 0 else None, tf_prob=tf,
                               generator=g)
                    loss = torch.mean((pred - tgt) ** 2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip is not None:
                        nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
                    opt.step()
                    run += float(loss.detach()) * len(idx)
                    seen += len(idx)
                tr = run / seen
                if not math.isfinite(tr):
                    raise FloatingPointError(
                        f"training diverged at epoch {epoch + 1} (loss {tr}); lower lr or set "
                        "grad_clip")
                history["train_loss"].append(tr)
                if len(vstarts):
                    vl = val_loss()
                    history["val_loss"].append(vl)
                    score = vl
                else:
                    score = tr
                if score < best:
                    best, best_epoch, bad = score, epoch + 1, 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    bad += 1
                logger.debug("epoch %d: train %.5f val %s", epoch + 1, tr,
                             history["val_loss"][-1] if history["val_loss"] else "-")
                if bar is not None:
                    bar.update(1)
                    post = {"loss": f"{tr:.4f}"}
                    if history["val_loss"]:
                        post["val"] = f"{history['val_loss'][-1]:.4f}"
                    bar.set_postfix(post)
                if len(vstarts) and bad >= self.patience:
                    break
        finally:
            if bar is not None:
                bar.close()
        net.load_state_dict(best_state)
        net.eval()
        self.net_ = net
        self.history_ = history
        self.n_epochs_ = len(history["train_loss"])
        self.best_epoch_ = best_epoch
        self.seed_ = seed

    def _prepare_net(self, net) -> None:
        """Hook run on the freshly initialised network before the optimizer is built."""

    def _predict_block(self, ctx, Xc, Xf, h):
        net = self.net_
        device = next(net.parameters()).device
        enc = np.concatenate([ctx, Xc], axis=2)
        out = []
        net.eval()
        with torch.no_grad():
            for i in range(0, len(enc), 1024):
                e = torch.as_tensor(enc[i:i + 1024], dtype=torch.float32, device=device)
                c = torch.as_tensor(np.ascontiguousarray(Xf[i:i + 1024]), dtype=torch.float32,
                                    device=device)
                out.append(net(e, c, h).double().cpu().numpy())
        return np.concatenate(out, axis=0)

    # -- persistence --------------------------------------------------------------
    def _json_params(self):
        params = super()._json_params()
        opt = self.optimizer
        name = _optimizer_name(opt)
        if opt is not None and name is None:
            logger.warning("optimizer %r is not saved (only None, a name or a known class can "
                           "be); the loaded forecaster refits with Adam", opt)
            params["optimizer_kwargs"] = None
        else:
            params["optimizer_kwargs"] = _json_kwargs(self.optimizer_kwargs)
        params["optimizer"] = name
        return params

    def _json_state(self):
        return {"history_": self.history_, "n_epochs_": self.n_epochs_,
                "best_epoch_": self.best_epoch_, "seed_": self.seed_}

    def _tensor_state(self):
        return {f"net.{k}": v.detach().cpu() for k, v in self.net_.state_dict().items()}

    def _net_for_state(self, state):
        """A network of the saved shapes (before its weights are loaded)."""
        return self._build_net(self.n_features_in_, self.n_covariates_)

    def _restore(self, state, tensors):
        net = self._net_for_state(state)
        sd = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        net.load_state_dict(sd)
        self.net_ = net.to(self.device).eval()
        self.history_ = state["history_"]
        self.n_epochs_ = state["n_epochs_"]
        self.best_epoch_ = state["best_epoch_"]
        self.seed_ = state["seed_"]


_NAMES_DOC = ", ".join(repr(n) for n in _OPTIMIZER_NAMES)

_HIGHWAY_DOC = """    highway : bool, default True
        A linear autoregressive skip (LSTNet's "highway"): one linear map
        from each channel's normalised look-back window to its next
        ``horizon`` values, shared by the channels and added to the
        network's forecast (``lookback * horizon + horizon`` parameters,
        started at zero). The recurrent network then models what a linear
        forecaster misses; on the benchmark's three real series it lowered
        TT-LSTM's longest-horizon RMSE by 2-15 % (benchmarks/README.md).
        False gives the plain seq2seq network (and is what files saved
        before this parameter existed load with).
"""

_TRAIN_DOC = """
    epochs : int, default 100
        Maximum passes over the training windows.
    batch_size : int, default 64
    lr : float, default {lr}
        Adam learning rate.
    weight_decay : float, default 0
        Passed to the optimizer (with a named or class optimizer, only when > 0).
    optimizer : None, str, torch.optim.Optimizer subclass or callable, default None
        None: Adam. A name ({names}) or a class is called as
        ``cls(params, lr=lr, **optimizer_kwargs)``; when ``optimizer_kwargs``
        holds ``reg=RankL1(lam)`` the params are the rank-aware groups of
        :func:`tensornet.optim.rank_param_groups`, so ``"linbreg"`` /
        ``"adabreg"`` / ``"proxsgd"`` learn the TT ranks while training. Any
        other callable is called with the network (a ``torch.nn.Module``)
        and must return an optimizer. Only names and the known classes are
        saved by ``save``.
    optimizer_kwargs : dict or None, default None
        Keyword arguments of a named or class optimizer (they override ``lr``).
    patience : int, default 10
        Early stopping: epochs without a better validation loss before
        stopping; the best weights are kept.
    grad_clip : float or None, default 1.0
        Clip the gradient norm.
    max_windows : int or None, default None
        Train on at most this many randomly drawn windows per epoch (all when
        None); handy for long series.
    window_norm : {{"last", "mean", "none"}}, default "last"
        Subtract each window's last (or mean) scaled value before the network
        and add it back to the forecast; makes level shifts harmless.
    impute : {{"linear", "ffill"}} or None, default None
        How to fill NaN gaps; None refuses data with gaps.
    random_state : int, numpy Generator or None
        Seeds initialisation, window order and scheduled sampling; equal
        seeds give equal forecasts.
    device : str, default "cpu"
    progress : bool, default False
        Show a tqdm progress bar over epochs.
"""


class TTLSTMForecaster(NeuralForecaster):
    __doc__ = """Seq2seq forecaster with higher-order tensor-train LSTM encoder and decoder.

    The encoder runs a :class:`tensornet.nn.TTLSTM` over the look-back window;
    the decoder, a :class:`tensornet.nn.TTLSTMCell`, starts from the encoder's
    last ``lags`` hidden states and cell state and is fed its own previous
    prediction (with ``scheduled_sampling``, sometimes the true value while
    training); a linear head maps each hidden state to the ``k`` outputs.
    Known covariates enter both encoder and decoder inputs.

    Parameters
    ----------
    lookback : int
        Length of the context window given to the encoder.
    horizon : int
        Steps forecast in one pass (and trained on).
    hidden_size : int, default 64
    lags : int, default 3
        Past hidden states in the higher-order transition.
    order : int, default 2
        Polynomial order of the transition.
    rank : int, default 8
        Inner tensor-train rank (the maximum rank when ranks are learned).
    scheduled_sampling : float, default 0
        Probability, at the first epoch, of feeding the decoder the true
        previous value instead of its prediction; decays linearly to 0.
    init_rank : int or None, default None
        Start every TT bond of encoder and decoder with only this many
        active components (:func:`tensornet.optim.low_rank_init`), the
        sparse start of Bregman training (``optimizer="linbreg"`` or
        ``"adabreg"`` with ``optimizer_kwargs={"reg": RankL1(lam)}``); then
        :meth:`prune_ranks` cuts the components that stayed zero.
""" + _HIGHWAY_DOC + _TRAIN_DOC.format(lr="3e-3", names=_NAMES_DOC) + """
    Attributes
    ----------
    net_ : torch.nn.Module
        The trained network (``net_.encoder``, ``net_.decoder``, ``net_.head``).
    scaler_y_, scaler_X_ : per-channel mean / scale of the training split
    history_ : dict with ``train_loss`` and ``val_loss`` per epoch
    n_epochs_, best_epoch_ : int
    n_parameters_ : int
    ranks_ : dict
        ``{"encoder": ranks, "decoder": ranks}``, the TT ranks of the network
        (smaller than ``rank`` after :meth:`prune_ranks`).

    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import TTLSTMForecaster
    >>> y = np.sin(np.arange(300) * 2 * np.pi / 25)
    >>> f = TTLSTMForecaster(lookback=30, horizon=10, hidden_size=8, rank=2, epochs=3,
    ...                      random_state=0).fit(y)
    >>> f.predict().shape
    (10,)
    """

    _teacher_forcing = True

    def __init__(self, lookback, horizon, hidden_size=64, lags=3, order=2, rank=8,
                 scheduled_sampling=0.0, epochs=100, batch_size=64, lr=3e-3,
                 weight_decay=0.0, patience=10, grad_clip=1.0, max_windows=None,
                 window_norm="last", impute=None, random_state=None, device="cpu",
                 progress=False, optimizer=None, optimizer_kwargs=None, init_rank=None,
                 highway=True):
        self.lookback = lookback
        self.horizon = horizon
        self.hidden_size = hidden_size
        self.lags = lags
        self.order = order
        self.rank = rank
        self.scheduled_sampling = scheduled_sampling
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.max_windows = max_windows
        self.window_norm = window_norm
        self.impute = impute
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.init_rank = init_rank
        self.highway = highway

    def _check_params(self):
        super()._check_params()
        check_int(self.hidden_size, "hidden_size", min_value=1)
        check_int(self.lags, "lags", min_value=1)
        check_int(self.order, "order", min_value=1)
        if not isinstance(self.rank, (list, tuple)):
            check_int(self.rank, "rank", min_value=1)
        if self.init_rank is not None:
            check_int(self.init_rank, "init_rank", min_value=1)
            if self.order == 1:
                raise ValueError("init_rank needs order >= 2 (order 1 has no TT rank); got "
                                 f"init_rank={self.init_rank!r} with order=1")

    def _build_net(self, k, m, ranks=None):
        hw = self._highway_shape()
        if ranks is None:
            return _TTSeq2Seq(k, m, self.hidden_size, self.lags, self.order, self.rank,
                              self.window_norm, highway=hw)
        return _TTSeq2Seq(k, m, self.hidden_size, self.lags, self.order,
                          list(ranks["encoder"]) or 1, self.window_norm,
                          decoder_rank=list(ranks["decoder"]) or 1, highway=hw)

    def _prepare_net(self, net) -> None:
        if self.init_rank is not None:
            from ..optim import low_rank_init

            low_rank_init(net, rank=self.init_rank)

    @property
    def ranks_(self) -> dict:
        self._check_is_fitted()
        return {"encoder": list(self.net_.encoder.ranks[1:-1]),
                "decoder": list(self.net_.decoder.ranks[1:-1])}

    def prune_ranks(self, tol: float = 0.0):
        """Cut the TT components that are exactly zero (see :func:`tensornet.optim.prune_ranks`).

        After training with ``RankL1`` (``optimizer="linbreg"`` / ``"adabreg"``)
        many components are exactly zero; removing them leaves the forecasts
        unchanged (with ``tol=0``) and makes the network smaller and faster.
        ``save`` / ``load`` keep the pruned ranks.

        Parameters
        ----------
        tol : float in [0, 1), default 0
            Also cut components smaller than ``tol`` times the largest of
            their bond (this changes the forecasts; the prediction
            intervals' calibration is not redone).

        Returns
        -------
        tensornet.optim.PruneReport
            Per layer: ranks, parameters and FLOPs per step before and after.
        """
        from ..optim import prune_ranks

        self._check_is_fitted()
        report = prune_ranks(self.net_, tol=tol)
        self.net_.eval()
        return report

    def _json_state(self):
        return {**super()._json_state(), "ranks_": self.ranks_}

    def _net_for_state(self, state):
        ranks = state.get("ranks_")
        if ranks is None or self.order == 1:
            return super()._net_for_state(state)
        return self._build_net(self.n_features_in_, self.n_covariates_, ranks)


class LSTMForecaster(NeuralForecaster):
    __doc__ = """Seq2seq ``torch.nn.LSTM`` baseline with the same API and training loop.

    Encoder and decoder are separate ``nn.LSTM`` s; the decoder starts from
    the encoder's final state and is fed its own predictions.

    Parameters
    ----------
    lookback, horizon : int
    hidden_size : int, default 64
    num_layers : int, default 1
    scheduled_sampling : float, default 0
""" + _HIGHWAY_DOC + _TRAIN_DOC.format(lr="3e-3", names=_NAMES_DOC) + """
    Examples
    --------
    >>> import numpy as np
    >>> from tensornet.forecast import LSTMForecaster
    >>> y = np.sin(np.arange(300) * 2 * np.pi / 25)
    >>> LSTMForecaster(30, 10, hidden_size=8, epochs=2, random_state=0).fit(y).predict().shape
    (10,)
    """

    _teacher_forcing = True

    def __init__(self, lookback, horizon, hidden_size=64, num_layers=1, scheduled_sampling=0.0,
                 epochs=100, batch_size=64, lr=3e-3, weight_decay=0.0, patience=10,
                 grad_clip=1.0, max_windows=None, window_norm="last", impute=None,
                 random_state=None, device="cpu", progress=False, optimizer=None,
                 optimizer_kwargs=None, highway=True):
        self.lookback = lookback
        self.horizon = horizon
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.scheduled_sampling = scheduled_sampling
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.max_windows = max_windows
        self.window_norm = window_norm
        self.impute = impute
        self.random_state = random_state
        self.device = device
        self.progress = progress
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.highway = highway

    def _check_params(self):
        super()._check_params()
        check_int(self.hidden_size, "hidden_size", min_value=1)
        check_int(self.num_layers, "num_layers", min_value=1)

    def _build_net(self, k, m):
        return _LSTMSeq2Seq(k, m, self.hidden_size, self.num_layers, self.window_norm,
                            highway=self._highway_shape())
