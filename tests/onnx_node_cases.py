#!/usr/bin/env python3
"""Print ONNX's own node test cases for MeanVarianceNormalization and
LpNormalization (the generators in onnx.backend.test.case.node), as text for
tests/test_onnx.c:

    case NAME OP NDIM D0 .. Dn-1 A B      (MVN: A = axes mask, B = 0;
                                           LpNormalization: A = axis, B = p)
    x COUNT V ...
    y COUNT V ...

Prints "skip REASON" and exits 0 when the onnx package (or numpy) is not
installed. Only single-node models (not the *_expanded function bodies).
"""
import sys
import warnings

warnings.filterwarnings("ignore")  # other operators' generators warn on import
try:
    import numpy as np

    # Debian bookworm's onnx 1.12 has generators (Bernoulli's, ...) that use
    # numpy aliases removed in numpy 1.24; collecting any case imports them.
    for alias, t in (("float", float), ("int", int), ("bool", bool), ("object", object), ("complex", complex)):
        if alias not in np.__dict__:
            setattr(np, alias, t)
    from onnx import helper
    from onnx.backend.test.case import node
except ImportError as e:  # pragma: no cover - depends on the machine
    # The python3 first on PATH (pyenv, a venv) may lack the Debian packages
    # (python3-onnx) that the system interpreter has: try that one once.
    import os

    system = "/usr/bin/python3"
    if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system) and \
            not os.environ.get("CLNORM_ONNX_RETRY"):
        os.environ["CLNORM_ONNX_RETRY"] = "1"
        sys.stdout.flush()
        os.execv(system, [system] + sys.argv)
    print(f"skip the onnx Python package is not installed ({e})")
    sys.exit(0)


def attrs(n):
    return {a.name: helper.get_attribute_value(a) for a in n.attribute}


def emit(name, op, shape, a, b, x, y):
    print(f"case {name} {op} {len(shape)} {' '.join(str(d) for d in shape)} {a} {b}")
    for tag, v in (("x", x), ("y", y)):
        flat = np.asarray(v, dtype=np.float64).ravel()
        print(f"{tag} {flat.size} " + " ".join(repr(float(f)) for f in flat))


def main():
    # One collection: the generators register every case on first import.
    for c in node.collect_testcases(None):
        g = c.model.graph
        if len(g.node) != 1 or g.node[0].op_type not in ("MeanVarianceNormalization", "LpNormalization"):
            continue
        op = g.node[0].op_type
        if True:
            at = attrs(g.node[0])
            for inputs, outputs in c.data_sets:
                x, y = inputs[0], outputs[0]
                nd = x.ndim
                if op == "MeanVarianceNormalization":
                    axes = at.get("axes", [0, 2, 3])
                    mask = 0
                    for k in axes:
                        mask |= 1 << (k + nd if k < 0 else k)
                    emit(c.name, "mvn", x.shape, mask, 0, x, y)
                else:
                    emit(c.name, "lp", x.shape, at.get("axis", -1), at.get("p", 2), x, y)


main()
