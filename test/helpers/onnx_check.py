#!/usr/bin/env python3
"""Validate an ONNX model with the reference checker and report ONNX's own inferred shapes.

Usage: onnx_check.py MODEL.onnx
Prints {"ok": true, "shapes": {name: [dim, ...]}} or {"ok": false, "error": "..."} (exit 1).
Existing value_info and output shapes are dropped before inference so the shapes come from ONNX,
not from the producer; declared output shapes are still checked against inference first.
"""
import json
import sys

import onnx


def dims_of(value_info):
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in t.tensor_type.shape.dim]


def check(path):
    model = onnx.load(path)
    # Dropped before checking too: full_check would otherwise stop at the first value_info that
    # disagrees with inference, and callers want ONNX's shapes to diff against their own.
    del model.graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    # First pass: declared output shapes must agree with inference (strict mode raises otherwise).
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    # Second pass: forget the declared output shapes so the reported ones are inferred too.
    for out in model.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    g = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True).graph
    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        d = dims_of(vi)
        if d is not None:
            shapes[vi.name] = d
    return shapes


def main():
    if len(sys.argv) != 2:
        print(json.dumps({"ok": False, "error": "usage: onnx_check.py MODEL.onnx"}))
        return 2
    try:
        shapes = check(sys.argv[1])
    except Exception as e:  # checker and inference raise several exception types
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        return 1
    print(json.dumps({"ok": True, "shapes": shapes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
