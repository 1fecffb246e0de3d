"""Magnetization and energy curves of a learned Ising model against Onsager and Yang.

The family's learned dimensionless coupling K = J/T_data (gen_jax.models.mrf)
gives the learned J-hat = K * T_data in units of the data's temperature
(J = 1 for data from gen_jax.data.ising_data). For each temperature T of the
sweep, checkerboard Gibbs chains run on an L x L periodic lattice with
coupling J-hat / T (and field h-hat / T), and every sweep after burn-in
records |M| = |sum_i s_i| / L^2 and the J = 1 energy e = -sum_<ij> s_i s_j / L^2.
Each chain's time average is one estimate; the result is their mean over
chains with the standard error across chains (independent chains, so the
error includes autocorrelation honestly).

Exact infinite-lattice references (J = 1, no field, k_B = 1):
  T_c = 2 / ln(1 + sqrt 2) = 2.26919 (Onsager 1944),
  M(T) = (1 - sinh(2/T)^-4)^(1/8) below T_c, 0 above (Yang 1952),
  e(T) = -coth(2b) [1 + (2/pi) (2 tanh(2b)^2 - 1) K(k)], b = 1/T,
         k = 2 sinh(2b) / cosh(2b)^2, K the complete elliptic integral of the
         first kind (e(T_c) = -sqrt 2).
A finite lattice deviates from them near T_c (|M| stays nonzero above T_c);
the energy of the finite L x L torus itself is also exact (Kaufman 1949), so
the sampled energies are checked against it at every T, T_c included.

Config keys (`config.evals.<name>`): type "ising_curve"; temperatures (list;
default: 11 values from 1.5 to 3.5 including T_c); size L (even, default 32);
burn_in, sweeps (measurement sweeps), chains (>= 2), thin (sweeps between
records, default 1); start "auto" (ordered chains where J-hat/T is above the
critical coupling, random ones elsewhere) | "random" | "ordered";
data_temperature (default: the "ising" dataset's options.temperature).

Results: `<name>/beta_j` (learned K), `<name>/beta_j_true` (1/T_data),
`<name>/j_learned` (J-hat), `<name>/m_abs_err_max_below_tc` and
`<name>/e_err_max` (largest |estimate - exact| over the sweep),
`<name>/e_err_max_finite` and `<name>/e_z_max_finite` (largest |estimate -
exact L x L energy|, in nats and in standard errors), `<name>/e_at_tc` (when
T_c is in the sweep), per temperature
`<name>/m_abs_T<T>`, `<name>/e_T<T>` and their `_se`, the data's own values
at T_data, and `<name>/png`, `<name>/csv`: the figure and the table, written
to `<workdir>/eval/<name>_<step>.{png,csv}`.
"""
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from gen_jax import errors, parallel
from gen_jax.data import ising_data, sources
from gen_jax.inference import pairwise_mrf as pm
from gen_jax.models import mrf

T_C = 2.0 / math.log(1.0 + math.sqrt(2.0))
DEFAULT_TEMPERATURES = (1.5, 1.8, 2.0, 2.1, 2.2, T_C, 2.35, 2.5, 2.75, 3.0, 3.5)


def yang_magnetization(t) -> np.ndarray:
  """Spontaneous magnetization per spin of the infinite 2-D Ising model (J = 1): f64[...]."""
  t = np.asarray(t, np.float64)
  with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
    inner = 1.0 - np.sinh(2.0 / t) ** -4.0
    return np.where(t < T_C, np.clip(inner, 0.0, None) ** 0.125, 0.0)


def onsager_energy(t) -> np.ndarray:
  """Exact energy per spin of the infinite 2-D Ising model (J = 1, no field): f64[...]."""
  b = 2.0 / np.asarray(t, np.float64)
  kappa = 2.0 * np.sinh(b) / np.cosh(b) ** 2
  factor = 2.0 * np.tanh(b) ** 2 - 1.0
  # At T_c kappa = 1 and K diverges (logarithmically) while factor -> 0: the product -> 0.
  with np.errstate(divide="ignore", invalid="ignore"):
    ell = factor * special.ellipk(np.minimum(kappa, 1.0) ** 2)
  ell = np.where(np.abs(factor) < 1e-12, 0.0, ell)
  return -(1.0 / np.tanh(b)) * (1.0 + (2.0 / np.pi) * ell)


def kaufman_log_z(k: float, rows: int, cols: int) -> float:
  """Exact log Z of the periodic rows x cols Ising torus at coupling K, no field (Kaufman 1949).

  Z = 1/2 (2 sinh 2K)^(rows cols / 2) (Z1 + Z2 + Z3 + Z4), with
  Z1, Z2 = prod_r 2 cosh, 2 sinh (cols/2 gamma_{2r+1}), Z3, Z4 the same over
  gamma_{2r}, r = 0 .. rows - 1, where cosh gamma_l = cosh 2K coth 2K - cos(pi l / rows)
  and gamma_0 = 2K + ln tanh K (negative above T_c: its sign enters Z4).
  """
  index = np.arange(2 * rows)
  c = np.cosh(2 * k) / np.tanh(2 * k) - np.cos(np.pi * index / rows)
  g = np.arccosh(np.maximum(c, 1.0))
  g[0] = 2 * k + np.log(np.tanh(k))
  odd, even = g[1::2] * cols / 2, g[0::2] * cols / 2

  def log_2cosh(x):
    return float(np.sum(np.abs(x) + np.log1p(np.exp(-2 * np.abs(x)))))

  def log_2sinh(x):             # (log |prod 2 sinh x|, sign of the product)
    with np.errstate(divide="ignore"):
      return (float(np.sum(np.abs(x) + np.log1p(-np.exp(-2 * np.abs(x))))),
              float(np.prod(np.sign(x))))
  terms = [(log_2cosh(odd), 1.0), log_2sinh(odd), (log_2cosh(even), 1.0), log_2sinh(even)]
  top = max(t for t, _ in terms)
  total = sum(sign * math.exp(t - top) for t, sign in terms if sign)
  return (math.log(0.5) + rows * cols / 2 * math.log(2 * math.sinh(2 * k)) + top
          + math.log(total))


def finite_lattice_energy(t: float, size: int) -> float:
  """Exact energy per spin <E>/N of the periodic size x size torus (J = 1) at temperature t.

  -d ln Z / dK / N from `kaufman_log_z` by a central difference (h = 1e-5 in K).
  """
  k, h = 1.0 / t, 1e-5
  return -(kaufman_log_z(k + h, size, size) - kaufman_log_z(k - h, size, size)) / (
      2 * h * size * size)


def _settings(ec) -> dict:
  temps = tuple(float(t) for t in ec.get("temperatures", DEFAULT_TEMPERATURES))
  return dict(temperatures=temps, size=int(ec.get("size", 32)),
              burn_in=int(ec.get("burn_in", 1000)), sweeps=int(ec.get("sweeps", 2000)),
              chains=int(ec.get("chains", 16)), thin=int(ec.get("thin", 1)),
              start=str(ec.get("start", "auto")))


def check(name: str, ec, config) -> None:
  """Fails before training on settings the sweep would trip over at the end."""
  s = _settings(ec)
  if not s["temperatures"] or min(s["temperatures"]) <= 0:
    raise errors.ConfigError(f"evals.{name}.temperatures must be a non-empty list of T > 0")
  if s["size"] < 2 or s["size"] % 2:
    raise errors.ConfigError(f"evals.{name}.size must be even and >= 2 (got {s['size']}): "
                             f"periodic checkerboard Gibbs needs a two-colourable lattice")
  if s["chains"] < 2:
    raise errors.ConfigError(f"evals.{name}.chains must be >= 2 (standard errors are over "
                             f"chains; got {s['chains']})")
  if s["sweeps"] < s["thin"] or s["thin"] < 1 or s["burn_in"] < 0:
    raise errors.ConfigError(f"evals.{name}: need sweeps >= thin >= 1 and burn_in >= 0")
  if s["start"] not in ("auto", "random", "ordered"):
    raise errors.ConfigError(errors.choices(f"evals.{name}.start", s["start"],
                                            ("auto", "random", "ordered")))
  if config.family != "mrf":
    raise errors.ConfigError(f"evaluator 'ising_curve' needs family 'mrf' (got "
                             f"{config.family!r})")
  _data_temperature(config.data, ec, name)


def _data_temperature(d, ec, name: str) -> float:
  if ec.get("data_temperature"):
    return float(ec.data_temperature)
  if d.name != "ising":
    raise errors.ConfigError(f"evals.{name}.data_temperature is needed: dataset {d.name!r} "
                             f"does not say at which temperature it was sampled")
  return float(ising_data.options_of(dict(d.get("options", {})))["temperature"])


def simulate(j_hat: float, h_hat: float, temperatures, size: int, chains: int, burn_in: int,
             sweeps: int, thin: int, start: str, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
  """Per-chain time averages of |M| and e per spin: (f64[nT, C], f64[nT, C]).

  One jitted program for all temperatures (vmap) and chains (vmap inside
  `pm.checkerboard_chains`), a `lax.scan` over sweeps.
  """
  temps = jnp.asarray(temperatures, jnp.float32)
  n = size * size
  records = sweeps // thin

  def observe(s):
    return jnp.stack([jnp.abs(jnp.sum(s)) / n, -pm.bond_sum(s) / n])

  def one(t, k, j_hat, h_hat):
    beta_j = j_hat / t
    lattice = pm.ising_lattice(size, size, beta_j, h_hat / t, periodic=True)
    k_start, k_chains = jax.random.split(k)
    hot = pm.initial_spins(k_start, (chains, size, size), "random")
    cold = jnp.broadcast_to(hot[:, :1, :1], hot.shape)    # all +1 or all -1 per chain
    ordered = {"auto": beta_j > 1.0 / T_C, "random": False, "ordered": True}[start]
    s0 = jnp.where(ordered, cold, hot)
    _, rec = pm.checkerboard_chains(lattice, jax.random.split(k_chains, chains), s0, records,
                                    burn_in, thin, observe)
    return jnp.mean(rec, axis=1)                         # [C, 2]

  keys = jax.random.split(key, len(temperatures))
  run = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))
  out = np.asarray(run(temps, keys, jnp.float32(j_hat), jnp.float32(h_hat)), np.float64)
  return out[..., 0], out[..., 1]                        # out: [nT, C, 2]


def evaluate(ctx, name: str, ec) -> dict:
  s = _settings(ec)
  temps = np.asarray(s["temperatures"], np.float64)
  t_data = _data_temperature(ctx.data, ec, name)
  periodic = bool(ctx.config.model.get("periodic", True))
  learned = {k: float(v) for k, v in
             jax.device_get(mrf.learned_couplings(ctx.params, periodic)).items()}
  j_hat, h_hat = learned["beta_j"] * t_data, learned["beta_h"] * t_data
  m_chain, e_chain = simulate(j_hat, h_hat, temps, s["size"], s["chains"], s["burn_in"],
                              s["sweeps"], s["thin"], s["start"], ctx.key(name))
  c = s["chains"]
  m, e = m_chain.mean(1), e_chain.mean(1)
  m_se, e_se = m_chain.std(1, ddof=1) / math.sqrt(c), e_chain.std(1, ddof=1) / math.sqrt(c)
  m_exact, e_exact = yang_magnetization(temps), onsager_energy(temps)
  e_finite = np.asarray([finite_lattice_energy(t, s["size"]) for t in temps])
  lattice = f"{s['size']}x{s['size']} periodic lattice"
  mc = (f"Monte-Carlo estimate ± s.e. over {c} checkerboard Gibbs chains ({s['burn_in']} "
        f"burn-in + {s['sweeps']} sweeps) on a {lattice} with the learned coupling")
  out = {
      f"{name}/beta_j": (learned["beta_j"], "learned K = J/T_data (mean over bonds; "
                         f"std {learned['beta_j_std']:.4g})"),
      f"{name}/beta_j_true": (1.0 / t_data, f"exact K of the data, 1/T_data (T_data = {t_data})"),
      f"{name}/j_learned": (j_hat, "learned J in units of the data temperature (true: 1)"),
      f"{name}/beta_h": (learned["beta_h"], "learned field h/T_data (true: 0)"),
  }
  below = temps < T_C - 1e-9
  if below.any():
    i = int(np.argmax(np.where(below, np.abs(m - m_exact), -1.0)))
    out[f"{name}/m_abs_err_max_below_tc"] = (
        float(np.abs(m - m_exact)[i]), f"max over T < T_c of |<|M|> - Yang M(T)| (at T = "
        f"{temps[i]:.4g}: {m[i]:.4f} ± {m_se[i]:.4f} vs exact {m_exact[i]:.4f}); {mc}")
  i = int(np.argmax(np.abs(e - e_exact)))
  out[f"{name}/e_err_max"] = (float(np.abs(e - e_exact)[i]), (
      f"max over T of |<E>/N - Onsager e(T)| (at T = {temps[i]:.4g}: {e[i]:.4f} ± "
      f"{e_se[i]:.4f} vs exact {e_exact[i]:.4f}); {mc}"))
  i = int(np.argmax(np.abs(e - e_finite) / e_se))
  out[f"{name}/e_err_max_finite"] = (float(np.abs(e - e_finite).max()), (
      f"max over T of |<E>/N - exact energy of the {lattice} (Kaufman)|; {mc}"))
  out[f"{name}/e_z_max_finite"] = (float(np.abs(e - e_finite)[i] / e_se[i]), (
      f"the same in standard errors, largest at T = {temps[i]:.4g} ({e[i]:.4f} ± {e_se[i]:.4f} "
      f"vs {e_finite[i]:.4f}); the learned J-hat = {j_hat:.4f}, not 1, shifts it too"))
  at_tc = np.nonzero(np.abs(temps - T_C) < 1e-6)[0]
  if len(at_tc):
    i = int(at_tc[0])
    out[f"{name}/e_at_tc"] = (float(e[i]), f"energy per spin at T_c = {T_C:.4f}: "
                              f"{mc}; exact -sqrt(2) = {-math.sqrt(2):.4f} (infinite lattice), "
                              f"{e_finite[i]:.4f} ({lattice}, Kaufman)")
    out[f"{name}/e_at_tc_se"] = (float(e_se[i]), "standard error over chains")
  for i, t in enumerate(temps):
    tag = f"T{t:.3f}"
    out[f"{name}/m_abs_{tag}"] = (float(m[i]), f"<|M|> per spin, {mc}; exact (Yang, infinite "
                                               f"lattice) {m_exact[i]:.4f}")
    out[f"{name}/m_abs_{tag}_se"] = (float(m_se[i]), "standard error over chains")
    out[f"{name}/e_{tag}"] = (float(e[i]), (
        f"<E> per spin (J = 1), {mc}; exact (Onsager, infinite lattice) {e_exact[i]:.4f}, "
        f"exact {lattice} (Kaufman) {e_finite[i]:.4f}"))
    out[f"{name}/e_{tag}_se"] = (float(e_se[i]), "standard error over chains")
  data = _data_observables(ctx)
  if data is not None:
    dm, dms, de, des, n, where, shape = data
    out[f"{name}/data_m_abs"] = (dm, f"<|M|> per spin of the {n} data configurations of "
                                     f"{where} ({shape}) at T_data = {t_data} (± {dms:.4f} s.e.)")
    out[f"{name}/data_e"] = (de, f"energy per spin (J = 1) of the same data (± {des:.4f} s.e.)")
  base = os.path.join(ctx.workdir, "eval", f"{name}_{ctx.step:08d}")
  if parallel.is_main():
    os.makedirs(os.path.dirname(base), exist_ok=True)
    table = np.stack([temps, m, m_se, m_exact, e, e_se, e_exact, e_finite], 1)
    np.savetxt(base + ".csv", table, delimiter=",", fmt="%.6f", comments="",
               header=f"T,m_abs,m_abs_se,m_yang,e,e_se,e_onsager,e_kaufman_L{s['size']}")
    title = (f"Ising {lattice}, {c} chains x {s['sweeps']} sweeps; learned K = "
             f"{learned['beta_j']:.4f} vs true 1/T_data = {1 / t_data:.4f} (J-hat = {j_hat:.4f})")
    draw_curves(base + ".png", temps, m, m_se, e, e_se, title,
                None if data is None else (t_data, data[0], data[2], data[6]), s["size"])
  out[f"{name}/png"] = (base + ".png", "<|M|> and <E> vs T against Yang / Onsager")
  out[f"{name}/csv"] = (base + ".csv", "the values of the figure")
  return out


def _data_observables(ctx):
  """(<|M|>, s.e., <e>, s.e., n, where, "HxW") of the eval split's configurations, or None."""
  raw = sources.from_config(ctx.data, ctx.data.eval_split)
  field = raw.spec.get("x")
  if field is None or field.modality != "image" or field.shape[-1] != 1:
    return None
  x = 2.0 * raw.arrays["x"][..., 0].astype(np.float64) - 1.0
  n_site = x.shape[1] * x.shape[2]
  periodic = bool(ctx.config.model.get("periodic", True))
  if ctx.data.name == "ising":
    periodic = bool(ising_data.options_of(dict(ctx.data.get("options", {})))["periodic"])
  m = np.abs(x.sum((1, 2))) / n_site
  e = -np.asarray(pm.bond_sum(jnp.asarray(x, jnp.float32), periodic), np.float64) / n_site
  n = len(x)
  return (float(m.mean()), float(m.std() / math.sqrt(n)), float(e.mean()),
          float(e.std() / math.sqrt(n)), n, f"{ctx.data.name}:{ctx.data.eval_split}",
          f"{x.shape[1]}x{x.shape[2]}")


def draw_curves(path: str, temps, m, m_se, e, e_se, title: str, data_point=None,
                size: int = 0) -> str:
  """Two panels (<|M|>, <E> per spin vs T): exact curves, estimates with ± 1 s.e. bars, T_c.

  `data_point`: (T_data, <|M|>, <e>, "HxW") of the data, drawn as squares. With `size`, the
  energy panel also shows the exact energy of the size x size torus.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  width, height, pw, ph = 1120, 500, 470, 360
  img = Image.new("RGB", (width, height), "white")
  d = ImageDraw.Draw(img)
  d.text((12, 8), title, fill="black")
  lo, hi = min(float(np.min(temps)), 1.0) - 0.05, max(float(np.max(temps)), 3.5) + 0.05
  dense = np.linspace(lo, hi, 600)
  panels = (("<|M|> per spin", (0.0, 1.05), m, m_se, yang_magnetization(dense),
             "exact: Yang (infinite lattice)", None if data_point is None else data_point[1]),
            ("<E> per spin (J = 1)", (-2.05, 0.05), e, e_se, onsager_energy(dense),
             "exact: Onsager (infinite lattice)",
             None if data_point is None else data_point[2]))
  for k, (label, (ylo, yhi), y, y_se, exact_y, exact_label, data_y) in enumerate(panels):
    x0, y0 = 80 + k * (pw + 90), 50

    def px(t, v, x0=x0, y0=y0, ylo=ylo, yhi=yhi):
      return (x0 + (t - lo) / (hi - lo) * pw, y0 + (yhi - v) / (yhi - ylo) * ph)
    d.rectangle([x0, y0, x0 + pw, y0 + ph], outline="black")
    for t in np.arange(math.ceil(lo * 2) / 2, hi, 0.5):
      x, _ = px(t, ylo)
      d.line([x, y0 + ph, x, y0 + ph + 5], fill="black")
      d.text((x - 10, y0 + ph + 8), f"{t:.1f}", fill="black")
    for v in np.arange(0.0, 1.01, 0.25) if k == 0 else np.arange(-2.0, 0.01, 0.5):
      _, y_ = px(lo, v)
      d.line([x0 - 5, y_, x0, y_], fill="black")
      d.text((x0 - 42, y_ - 6), f"{v:.2f}", fill="black")
    d.text((x0 + pw // 2 - 10, y0 + ph + 24), "T (J = 1)", fill="black")
    d.text((x0, y0 - 16), label, fill="black")
    xc, _ = px(T_C, ylo)
    for yy in range(y0, y0 + ph, 10):                     # dashed T_c line
      d.line([xc, yy, xc, min(yy + 5, y0 + ph)], fill=(120, 120, 120))
    d.text((xc + 4, y0 + 4), f"T_c = {T_C:.4f}", fill=(90, 90, 90))
    d.line([px(t, v) for t, v in zip(dense, exact_y, strict=True)], fill=(30, 90, 200), width=2)
    if k == 1 and size:
      fine = np.linspace(lo, hi, 200)
      finite = [px(t, finite_lattice_energy(t, size)) for t in fine]
      for a in range(0, len(finite) - 1, 2):              # dashed: exact on the finite torus
        d.line([finite[a], finite[a + 1]], fill=(240, 140, 0), width=2)
      ly = y0 + ph + 60
      d.line([x0, ly + 6, x0 + 10, ly + 6], fill=(240, 140, 0), width=2)
      d.line([x0 + 14, ly + 6, x0 + 24, ly + 6], fill=(240, 140, 0), width=2)
      d.text((x0 + 30, ly), f"exact: Kaufman ({size}x{size} torus)", fill="black")
    for t, v, se in zip(temps, y, y_se, strict=True):
      x, yv = px(t, v)
      _, ya = px(t, v + se)
      _, yb = px(t, v - se)
      d.line([x, ya, x, yb], fill=(200, 30, 30), width=1)
      d.line([x - 3, ya, x + 3, ya], fill=(200, 30, 30))
      d.line([x - 3, yb, x + 3, yb], fill=(200, 30, 30))
      d.ellipse([x - 3, yv - 3, x + 3, yv + 3], outline=(200, 30, 30), fill=(200, 30, 30))
    if data_y is not None:
      x, yv = px(data_point[0], data_y)
      d.rectangle([x - 4, yv - 4, x + 4, yv + 4], outline=(0, 140, 0))
    ly = y0 + ph + 44
    d.line([x0, ly + 6, x0 + 24, ly + 6], fill=(30, 90, 200), width=2)
    d.text((x0 + 30, ly), exact_label, fill="black")
    d.ellipse([x0 + 250, ly + 3, x0 + 256, ly + 9], fill=(200, 30, 30))
    d.text((x0 + 262, ly), "Gibbs, learned coupling (±1 s.e.)", fill="black")
    if data_y is not None:
      d.rectangle([x0 + 250, ly + 19, x0 + 256, ly + 25], outline=(0, 140, 0))
      d.text((x0 + 262, ly + 16), f"data ({data_point[3]}) at T_data", fill="black")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  img.save(path)
  return path
