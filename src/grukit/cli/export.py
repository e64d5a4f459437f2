"""``grukit export onnx``: a trained run's model as an ONNX file.

    grukit export onnx --run runs/d2l --out d2l.onnx          a language-model run
    grukit export onnx --run runs/airline --out airline.onnx  a forecasting run
    grukit export onnx --run runs/d2l --out d2l.onnx --dynamo --overwrite

The model's recurrences become ONNX's own GRU / RNN / LSTM operators, or a ``Scan`` for
the layernorm-gru and mingru cells (see ``grukit.interop.onnx.export_onnx``); batch size
and length are dynamic.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help="export a trained model (ONNX)")
    sub = p.add_subparsers(dest="export_format", required=True)
    o = sub.add_parser(
        "onnx",
        help="write a run's model as ONNX (GRU/RNN/LSTM operators or a Scan, dynamic batch "
        "and length)",
        description="Load the model of a run directory written by `grukit lm train` or "
        "`grukit forecast train` and write it as an ONNX model. A language model takes "
        "tokens (N, T) int64 and its initial state h0 (and c0 for an LSTM) and returns "
        "logits (T·N, V) and the final state; a forecaster takes x (N, L, I) and returns "
        "quantiles (N, H, Q).",
    )
    o.add_argument("--run", required=True, metavar="DIR", help="a run directory")
    o.add_argument("--out", required=True, metavar="PATH", help="the ONNX file to write")
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    o.add_argument(
        "--dynamo", action="store_true", help="torch's dynamo exporter (default: TorchScript)"
    )
    o.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    o.add_argument(
        "--no-state",
        dest="state",
        action="store_false",
        help="a language model without the initial-state inputs (starts from zeros)",
    )
    o.set_defaults(func=_onnx)


def _load(run_dir: str) -> tuple[torch.nn.Module, torch.Tensor, str]:
    """(model in eval mode, a batched example input, a description) of a run directory."""
    from ..training import RunDir

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise FileNotFoundError(f"expected a run directory at {run.path}, found none")
    saved = run.read_config()
    if "lm" in saved:
        from ..training.lm import load_run

        model, vocab, config = load_run(run.path)
        tokens = torch.randint(0, len(vocab), (2, max(2, config.num_steps)))  # (N, T)
        return model, tokens, f"language model ({config.cell}, vocab {len(vocab)})"
    if "config" in saved and "scaler" in saved:
        from ..training.forecast import load_model

        forecaster = load_model(run)
        mcfg = forecaster.config()
        lookback = max(2, int(saved["config"].get("lookback") or 2))
        x = torch.zeros(2, lookback, forecaster.input_size)  # (N, L, I)
        return forecaster.eval(), x, f"forecaster ({mcfg['strategy']}, horizon {mcfg['horizon']})"
    raise ValueError(
        f"expected a language-model or forecasting run in {run.path}, "
        f"got a config.json with {sorted(saved)}"
    )


def _onnx(args: argparse.Namespace) -> int:
    from ..interop.onnx import OPSET, export_onnx

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise ValueError(f"expected --out to be a file, got the directory {out}")
    model, example, what = _load(args.run)
    opset = OPSET if args.opset is None else args.opset
    export_onnx(model, out, example, initial_state=args.state, dynamo=args.dynamo, opset=opset)
    import onnx

    graph = onnx.load(str(out), load_external_data=False).graph
    names = [", ".join(v.name for v in vs) for vs in (graph.input, graph.output)]
    scanned = any(n.op_type == "Scan" for n in graph.node)  # LayerNormGRU, MinGRU: dynamo
    exporter = "dynamo" if args.dynamo or scanned else "TorchScript"
    print(f"wrote {out}: {what}; inputs {names[0]} → outputs {names[1]}")
    print(f"opset {opset}, {exporter} exporter; batch size and length are dynamic")
    return 0
