"""The CLUB mutual-information estimator (Cheng et al., ICML 2020), as the paper uses it.

q(y|x) is a diagonal Gaussian with mean p_mu(x) and log-variance p_logvar(x):
    p_mu:     Linear(d, h/2) -> Tanh -> Linear(h/2, d)
    p_logvar: Linear(d, h/2) -> Tanh -> Linear(h/2, d) -> Tanh
(d = 768, h = 500 for the published checkpoint). The estimate on n pairs is
    mean_i [ sum_k -(mu_ik - y_ik)^2 / (2 exp(lv_ik))
             - sum_k mean_j -(y_jk - mu_ik)^2 / (2 exp(lv_ik)) ],
computed here in O(n d) (mean_j (y_jk - mu_ik)^2 = E[y_k^2] - 2 mu_ik E[y_k] + mu_ik^2)
instead of the reference's O(n^2 d), in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from emidbench.common.errors import UserError


class CLUB(nn.Module):
    def __init__(self, x_dim: int = 768, y_dim: int = 768, hidden: int = 500):
        super().__init__()
        h = hidden // 2
        self.p_mu = nn.Sequential(nn.Linear(x_dim, h), nn.Tanh(), nn.Linear(h, y_dim))
        self.p_logvar = nn.Sequential(nn.Linear(x_dim, h), nn.Tanh(), nn.Linear(h, y_dim), nn.Tanh())
        self.x_dim, self.y_dim, self.hidden = x_dim, y_dim, hidden

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.estimate_tensor(x, y)

    def estimate_tensor(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.p_mu(x).double(), self.p_logvar(x).double()
        y = y.double()
        inv = 0.5 / logvar.exp()
        positive = -((mu - y) ** 2) * inv
        m1, m2 = y.mean(0, keepdim=True), (y ** 2).mean(0, keepdim=True)
        negative = -(m2 - 2 * mu * m1 + mu ** 2) * inv
        return (positive.sum(-1) - negative.sum(-1)).mean()

    @torch.no_grad()
    def estimate(self, x, y) -> float:
        """The CLUB estimate of I(x; y) on these n pairs (float)."""
        x, y = self._inputs(x, y)
        self.eval()
        return float(self.estimate_tensor(x, y))

    @torch.no_grad()
    def resampled_estimates(self, x, y, weights: np.ndarray) -> np.ndarray:
        """estimate() on many resamples of the n pairs at once. weights: B x n, row b the
        item counts of resample b divided by n. The estimate is a weighted mean of
        per-item terms plus products with the resample's means of y and y^2, so all B
        come from a few matrix products instead of B forward passes (the bootstrap's cost)."""
        x, y = self._inputs(x, y)
        self.eval()
        mu, logvar = self.p_mu(x).double().numpy(), self.p_logvar(x).double().numpy()
        y = y.double().numpy()
        inv = 0.5 / np.exp(logvar)
        positive = -(((mu - y) ** 2) * inv).sum(1)  # per item
        w = np.asarray(weights, dtype=np.float64)
        m1, m2 = w @ y, w @ (y ** 2)  # each resample's E[y_k], E[y_k^2]
        # mean_i of -negative_i = sum_k m2_k E_w[inv_ik] - 2 m1_k E_w[mu_ik inv_ik] + E_w[mu_ik^2 inv_ik]
        minus_negative = (m2 * (w @ inv)).sum(1) - 2 * (m1 * (w @ (mu * inv))).sum(1) + w @ ((mu ** 2) * inv).sum(1)
        return w @ positive + minus_negative

    def loglik(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training objective: mean_i sum_k ( -(mu - y)^2 / exp(logvar) - logvar )."""
        mu, logvar = self.p_mu(x), self.p_logvar(x)
        return (-((mu - y) ** 2) / logvar.exp() - logvar).sum(-1).mean()

    def _inputs(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(x), dtype=self.p_mu[0].weight.dtype)
        y = torch.as_tensor(np.asarray(y), dtype=self.p_mu[0].weight.dtype)
        for name, t, d in (("x", x, self.x_dim), ("y", y, self.y_dim)):
            if t.ndim != 2 or t.shape[1] != d:
                raise UserError(f"embeddings {name} have shape {tuple(t.shape)}; the estimator expects (n, {d})")
            if not torch.isfinite(t).all():
                raise UserError(f"embeddings {name} contain NaN or inf")
        if x.shape[0] != y.shape[0]:
            raise UserError(f"embeddings x and y have {x.shape[0]} and {y.shape[0]} rows")
        return x, y


def emi(club: CLUB, x, y_hat, y) -> float:
    """EMI = CLUB(x, model answers) - CLUB(x, reference answers)."""
    return club.estimate(x, y_hat) - club.estimate(x, y)


def load_club(path: Path) -> CLUB:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: estimator checkpoint not found") from None
    except Exception as e:
        raise UserError(f"{path}: not a readable torch checkpoint ({type(e).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    keys = {"p_mu.0.weight", "p_mu.2.weight", "p_logvar.0.weight", "p_logvar.2.weight"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise UserError(f"{path}: not a CLUB state dict (expected keys p_mu.0.*, p_mu.2.*, p_logvar.0.*, p_logvar.2.*)")
    h2, x_dim = state["p_mu.0.weight"].shape
    y_dim = state["p_mu.2.weight"].shape[0]
    club = CLUB(x_dim, y_dim, 2 * h2)
    club.load_state_dict({k: v.float() for k, v in state.items()})
    return club.eval()


def save_club(club: CLUB, path: Path) -> None:
    import io

    from emidbench.common.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in club.state_dict().items()}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


MAX_EPOCHS = 200


def fit_club(x, y, seed: int = 0, hidden: int = 500, lr: float = 1e-3, batch_size: int = 256,
             max_epochs: int = MAX_EPOCHS, val_fraction: float = 0.1, patience: int = 10,
             on_epoch=None) -> tuple[CLUB, dict]:
    """Fit q(y|x) by maximum likelihood with Adam, a held-out split and early stopping.
    Deterministic for a seed on CPU. Returns the best-on-validation estimator and a log.
    on_epoch(epoch, validation log-likelihood) after each epoch (a progress bar)."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y = torch.as_tensor(np.asarray(y, dtype=np.float32))
    if x.shape[0] != y.shape[0] or x.shape[0] < 4:
        raise UserError(f"cannot fit an estimator on {x.shape[0]} pairs")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    club = CLUB(x.shape[1], y.shape[1], hidden)
    perm = torch.randperm(x.shape[0], generator=gen)
    n_val = max(1, int(round(val_fraction * x.shape[0])))
    val, train = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(club.parameters(), lr=lr)
    best, best_state, bad, log = -float("inf"), None, 0, []
    for epoch in range(max_epochs):
        club.train()
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = -club.loglik(x[idx], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        club.eval()
        with torch.no_grad():
            v = float(club.loglik(x[val], y[val]))
        log.append(v)
        if on_epoch is not None:
            on_epoch(epoch, v)
        if v > best + 1e-6:
            best, best_state, bad = v, {k: t.clone() for k, t in club.state_dict().items()}, 0
        else:
            bad += 1
            if bad >= patience:
                break
    club.load_state_dict(best_state)
    return club.eval(), {"val_loglik": best, "val_loglik_per_epoch": log, "epochs": len(log),
                         "n_train": int(len(train)), "n_val": int(n_val), "seed": seed, "lr": lr,
                         "batch_size": batch_size, "hidden": hidden}
