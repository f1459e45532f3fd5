#!/usr/bin/python3
"""fit_erfc.py -- the erfc coefficients of src/kernels/act.c (GELU).

erfc(z) = t P(t) exp(-z^2), t = 1 / (1 + a z): the form of Abramowitz & Stegun 7.1.26, with a
degree-7 P fitted to erfc's RELATIVE error over z in [0, 10] (past z = 9.3 the float exponential
is 0 anyway). P(t) = erfcx(z) (1 + a z) is fitted by weighted least squares with Lawson's
reweighting, which converges to the minimax (equi-ripple) fit. a = 0.59 is the best of a scan
(--scan). Prints the coefficients as C floats and the relative error of the fit with them
rounded to float32 (evaluated in double; act.c's own float error is measured by tests/test_act.c).

usage: /usr/bin/python3 scripts/fit_erfc.py [--degree 7] [--a 0.59] [--scan]   (needs numpy, scipy)
"""
import argparse

import numpy as np
from scipy.special import erfcx


def fit(a, degree, zmax=10.0, iters=80):
    z = np.linspace(0.0, zmax, 20000)
    t = 1.0 / (1.0 + a * z)
    h = erfcx(z) * (1.0 + a * z)
    V = np.vander(t, degree + 1, increasing=True) / h[:, None]  # rows scaled: relative error
    w = np.ones_like(t)
    for _ in range(iters):
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(V * sw[:, None], sw, rcond=None)
        e = np.abs(V @ c - 1.0)
        w = w * (e + 1e-30)
        w /= w.sum()
    return c


def rel_error(a, c, zmax=10.0):
    z = np.linspace(0.0, zmax, 400001)
    a32 = float(np.float32(a))
    t = 1.0 / (1.0 + a32 * z)
    c32 = np.asarray(c, np.float32).astype(np.float64)
    return float(np.max(np.abs(np.polyval(c32[::-1], t) / (erfcx(z) * (1.0 + a32 * z)) - 1.0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--degree", type=int, default=7)
    ap.add_argument("--a", type=float, default=0.59)
    ap.add_argument("--scan", action="store_true", help="scan a over [0.2, 1.5] first")
    o = ap.parse_args()
    a = o.a
    if o.scan:
        a = min(np.arange(0.2, 1.5, 0.01), key=lambda v: rel_error(v, fit(v, o.degree)))
    c = fit(a, o.degree)
    print(f"#define ERFC_A {np.float32(a):.9g}f")
    print("static const float ERFC_P[%d] = {%s};" % (len(c), ", ".join(f"{np.float32(v):.9g}f" for v in c)))
    print(f"max relative error of erfc on [0, 10]: {rel_error(a, c):.3g}")


if __name__ == "__main__":
    main()
