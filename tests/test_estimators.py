import math

import numpy as np
import pytest
import torch

from emidbench.common.errors import UserError
from emidbench.score.bootstrap import bootstrap_ci
from emidbench.score.club import CLUB, emi, fit_club, load_club, save_club
from emidbench.score.metrics import EmbeddingSet, score_scenarios
from emidbench.score.rjsd import CovSet, emid_true_bound, emid_upper_bound, jsd, vn_entropy
from tests.helpers import reference_dir


def unit(rng, n, d):
    z = rng.normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


# ----------------------------------------------------------------------- von Neumann JSD

def test_jsd_identical_sets_is_zero_and_symmetric():
    rng = np.random.default_rng(0)
    a, b = unit(rng, 30, 8), unit(rng, 90, 8)
    assert abs(jsd(a, a)) < 1e-12
    assert jsd(a, b) == pytest.approx(jsd(b, a), abs=1e-12)
    assert jsd(a, b) > 0


def test_entropy_of_isotropic_covariance_is_log_d():
    assert vn_entropy(np.eye(5) * 3.0) == pytest.approx(math.log(5))


def test_disjoint_supports_give_log_2():
    # P in coordinates {0,1}, Q in {2,3}, with equal traces: JSD = log 2.
    p = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    q = np.array([[0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    assert jsd(p, q) == pytest.approx(math.log(2))


def test_unequal_sizes_are_not_normalised_hand_computed():
    # P: one row e1 (C_P = diag(1, 0)); Q: three rows e2 (C_Q = diag(0, 3)).
    # M = diag(1/2, 3/2) -> eigenvalues normalised (1/4, 3/4); H(C_P) = H(C_Q) = 0.
    p = np.array([[1.0, 0.0]])
    q = np.array([[0.0, 1.0]] * 3)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert jsd(p, q) == pytest.approx(expected)
    # Normalising each covariance by n first (what the reference does NOT do) gives log 2.
    assert abs(expected - math.log(2)) > 0.1


def test_bounds():
    assert emid_upper_bound(0.04, 0.09, 0.0016, 0.0081) == pytest.approx(0.2 + 0.3 + 0.2 + 0.3)
    assert emid_true_bound(0.04, 0.09, 0.0016, 0.0081, 2.0) == pytest.approx(2 * 0.5 + 4 * 0.5)
    assert emid_upper_bound(-1e-17, 0, 0, 0) == 0.0


def test_covset_reuse_matches_direct():
    rng = np.random.default_rng(1)
    a, b = unit(rng, 20, 6), unit(rng, 40, 6)
    assert CovSet(a).jsd(CovSet(b)) == pytest.approx(jsd(a, b), abs=1e-14)


def test_fewer_rows_than_dimensions_gives_the_covariance_numbers():
    # CovSet takes eigenvalues from the n x n Gram matrix when n < d (LLaVA-Bench: 90 rows,
    # d = 512-1024); jsd() always uses the d x d covariance, the published route.
    rng = np.random.default_rng(2)
    for n_p, n_q, d in [(30, 40, 128), (60, 67, 128), (64, 64, 128), (90, 90, 64), (5, 200, 100)]:
        a, b = unit(rng, n_p, d), unit(rng, n_q, d)
        assert CovSet(a).entropy == pytest.approx(vn_entropy(a.T @ a), abs=1e-12)
        assert CovSet(a).jsd(CovSet(b)) == pytest.approx(jsd(a, b), abs=1e-12)
        assert CovSet(b).jsd(CovSet(a)) == pytest.approx(jsd(a, b), abs=1e-12)
    assert CovSet(a).jsd(CovSet(a.copy())) == 0.0  # a text-only shift's jsd_v: exactly 0, never -1e-16
    # hand-computed, through the Gram route: one row e1 against three rows e2 in 10 dimensions
    e = np.eye(10)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert CovSet(e[[0]]).jsd(CovSet(e[[1, 1, 1]])) == pytest.approx(expected, abs=1e-14)


# ----------------------------------------------------------------------- CLUB

def club_reference_loop(club: CLUB, x: np.ndarray, y: np.ndarray) -> float:
    """The published formula, written out literally (O(n^2 d) loops)."""
    with torch.no_grad():
        mu = club.p_mu(torch.tensor(x, dtype=torch.float32)).double().numpy()
        lv = club.p_logvar(torch.tensor(x, dtype=torch.float32)).double().numpy()
    n, d = y.shape
    total = 0.0
    for i in range(n):
        pos = sum(-(mu[i, k] - y[i, k]) ** 2 / 2 / math.exp(lv[i, k]) for k in range(d))
        neg = sum(np.mean([-(y[j, k] - mu[i, k]) ** 2 for j in range(n)]) / 2 / math.exp(lv[i, k]) for k in range(d))
        total += pos - neg
    return total / n


def test_club_estimate_equals_the_published_formula():
    torch.manual_seed(0)
    club = CLUB(6, 6, 10)
    rng = np.random.default_rng(2)
    x, y = unit(rng, 12, 6).astype(np.float32), unit(rng, 12, 6).astype(np.float32)
    assert club.estimate(x, y) == pytest.approx(club_reference_loop(club, x, y.astype(np.float64)), rel=1e-9, abs=1e-12)
    assert emi(club, x, y, x) == pytest.approx(club.estimate(x, y) - club.estimate(x, x))


def test_fitted_club_sees_dependence():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 4))
    y_dep = 0.9 * x + 0.1 * rng.normal(size=(600, 4))
    y_ind = rng.normal(size=(600, 4))
    club_dep, info = fit_club(x, y_dep, seed=0, hidden=32, max_epochs=60)
    club_ind, _ = fit_club(x, y_ind, seed=0, hidden=32, max_epochs=60)
    dep, ind = club_dep.estimate(x, y_dep), club_ind.estimate(x, y_ind)
    assert dep > 1.0 and abs(ind) < 0.3 and dep > ind + 1.0, (dep, ind)
    assert info["val_loglik"] == max(info["val_loglik_per_epoch"])


def test_fit_is_deterministic_and_round_trips(tmp_path):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(64, 5)), rng.normal(size=(64, 5))
    a, _ = fit_club(x, y, seed=7, hidden=8, max_epochs=5)
    b, _ = fit_club(x, y, seed=7, hidden=8, max_epochs=5)
    for k in a.state_dict():
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    save_club(a, tmp_path / "c.pt")
    c = load_club(tmp_path / "c.pt")
    assert (c.x_dim, c.hidden) == (5, 8)
    assert c.estimate(x, y) == a.estimate(x, y)
    save_club(c, tmp_path / "d.pt")
    assert (tmp_path / "c.pt").read_bytes() == (tmp_path / "d.pt").read_bytes()


def test_published_checkpoint_loads():
    path = reference_dir("mllmshift-emi", "CLUB_global.pt")
    if path is None:
        pytest.skip("../shared/reference/mllmshift-emi/CLUB_global.pt is not beside this clone")
    club = load_club(path)
    assert (club.x_dim, club.y_dim, club.hidden) == (768, 768, 500)
    rng = np.random.default_rng(5)
    x, y = unit(rng, 90, 768), unit(rng, 90, 768)
    v = club.estimate(x, y)
    assert math.isfinite(v)
    with pytest.raises(UserError, match=r"expects \(n, 768\)"):
        club.estimate(unit(rng, 5, 256), unit(rng, 5, 256))


def test_bad_estimator_inputs(tmp_path):
    club = CLUB(4, 4, 8)
    x = np.ones((3, 4))
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(UserError, match="NaN or inf"):
        club.estimate(x, bad)
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable torch checkpoint"):
        load_club(tmp_path / "x.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "y.pt")
    with pytest.raises(UserError, match="not a CLUB state dict"):
        load_club(tmp_path / "y.pt")


# ----------------------------------------------------------------------- scenario metrics

def _sets(rng, d=8):
    def s(n, shift):
        v = unit(rng, n, d) + shift  # moved towards (1, ..., 1), then back on the sphere
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return EmbeddingSet(v, unit(rng, n, d), unit(rng, n, d), unit(rng, n, d))

    return {"id": s(30, 0.0), "a": s(20, 0.5), "b": s(25, 1.0)}


def test_score_scenarios_definitions():
    rng = np.random.default_rng(6)
    sets = _sets(rng)
    torch.manual_seed(0)
    club = CLUB(8, 8, 16)
    rows = {r["scenario"]: r for r in score_scenarios("id", sets, club, entropy_scaler=2.0)}
    e_id = club.estimate(sets["id"].x, sets["id"].y_hat) - club.estimate(sets["id"].x, sets["id"].y)
    assert rows["id"]["emi"] == pytest.approx(e_id) and rows["id"]["emid"] == 0
    for name in ("a", "b"):
        r, s = rows[name], sets[name]
        assert r["emid"] == pytest.approx(e_id - r["emi"])
        assert r["jsd_v"] == pytest.approx(jsd(sets["id"].x_v, s.x_v))
        assert r["jsd_y_ood"] == pytest.approx(jsd(s.y_hat, s.y))
        assert r["jsd_y_id"] == pytest.approx(jsd(sets["id"].y_hat, sets["id"].y))
        assert r["emid_ub"] == pytest.approx(emid_upper_bound(r["jsd_v"], r["jsd_t"], r["jsd_y_id"], r["jsd_y_ood"]))
        assert r["emid_true_ub"] == pytest.approx(emid_true_bound(r["jsd_v"], r["jsd_t"], r["jsd_y_id"],
                                                                  r["jsd_y_ood"], 2.0))
    assert rows["b"]["jsd_v"] > rows["a"]["jsd_v"]  # farther shift, larger divergence
    with pytest.raises(UserError, match="ID scenario 'zz'"):
        score_scenarios("zz", sets, club)


def test_bootstrap():
    vals = np.arange(50, dtype=float)
    lo, hi = bootstrap_ci(lambda i: vals[i].mean(), 50, 200, seed=1, label="m")
    assert lo < vals.mean() < hi
    assert (lo, hi) == bootstrap_ci(lambda i: vals[i].mean(), 50, 200, seed=1, label="m")
    assert (lo, hi) != bootstrap_ci(lambda i: vals[i].mean(), 50, 200, seed=2, label="m")
    rng = np.random.default_rng(7)
    rows = score_scenarios("id", _sets(rng), CLUB(8, 8, 16), bootstrap=30, seed=0)
    for r in rows:
        assert r["emi_lo"] <= r["emi_hi"]
