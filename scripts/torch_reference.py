#!/usr/bin/env python3
"""faultloop models in PyTorch: the reference int8 forward pass of a
`faultloop export` file, float modules whose state_dict `faultloop import`
reads, and a small command line (docs/pytorch.md).

The int8 forward is exactly what faultloop's int8 path and the DLA compute
(trainer/src/quant.rs, model.rs, reference.rs); per layer, in order:

    a    = quantize(x, in_scale)           int8 values (float32 tensor), symmetric
    acc  = a @ W_q^T                       int32 (exact here in float64)  <- the DLA
    y    = float32(acc) * (in_scale * w_scale) + bias     float32, two roundings
    y    = relu(y); conv layers: 2x2 max pool (floor)
    quantize(x, s) = clamp(round_half_even(x * float32(1 / s)), -127, 127)

and the next layer quantizes y with its own in_scale (requantisation). The
last layer's y are the logits. Inputs are images as float32 `uint8 / 255.0`,
[B, 1, 28, 28] (an MLP flattens them).

Usage:
    python scripts/torch_reference.py logits MODEL.safetensors --data-dir DIR \
        --limit 500 -o logits.safetensors   # int8 logits [N, classes], labels [N]
    python scripts/torch_reference.py train --data-dir DIR --widths 784-64-10 \
        --steps 300 --seed 1 -o mlp.safetensors   # a float MLP, prints JSON
"""
import argparse
import gzip
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

QMAX = 127.0
FORMAT = "faultloop-export"


# ---- the export -------------------------------------------------------------

def load_export(path):
    """(tensors, layers): the file's tensors and its `layers` metadata (a list
    of dicts: name, kind 'linear'|'conv2d', k, n, conv, post {relu, pool})."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a faultloop export (metadata format {meta.get('format')!r})")
    return load_file(path), json.loads(meta["layers"])


def quantize(x, scale):
    """int8 values of x (as float32): x times the float32 reciprocal of the
    scale, rounded half to even (torch.round), clamped to +-127."""
    inv = torch.tensor(1.0 / float(scale), dtype=torch.float32)  # == float32 1/s
    return torch.clamp(torch.round(x.to(torch.float32) * inv), -QMAX, QMAX)


def int8_matmul(a, w_q):
    """a [M, K] int8 values @ w_q [N, K] int8 transposed -> [M, N] int32 as
    float32. float64 is exact while |acc| < 2**53; the DLA wraps at 2**31,
    which these layers (127 * 127 * K, K < 133 000) never reach."""
    acc = a.to(torch.float64) @ w_q.to(torch.float64).t()
    return acc.to(torch.float32)


def forward_int8(tensors, layers, x):
    """Logits [B, classes] of the int8 model for images x [B, C, H, W]."""
    for l in layers:
        name = l["name"]
        s_in, s_w = tensors[f"{name}.in_scale"], tensors[f"{name}.w_scale"]
        w_q, bias = tensors[f"{name}.weight_q"], tensors[f"{name}.bias"]
        mult = s_in * s_w  # float32 0-dim: the requantisation multiplier
        if l["kind"] == "linear":
            if x.dim() != 2:
                x = x.flatten(1)
            y = int8_matmul(quantize(x, s_in), w_q) * mult + bias
        else:
            g = l["conv"]
            b = x.shape[0]
            oh = (g["in_h"] + 2 * g["padding"] - g["kernel"]) // g["stride"] + 1
            ow = (g["in_w"] + 2 * g["padding"] - g["kernel"]) // g["stride"] + 1
            # im2col of the quantized input (zero padding quantizes to 0):
            # columns ordered (channel, kernel row, kernel col), as W_q.view(N, -1).
            cols = F.unfold(quantize(x, s_in), g["kernel"], padding=g["padding"], stride=g["stride"])
            a = cols.transpose(1, 2).reshape(b * oh * ow, -1)
            y = int8_matmul(a, w_q.reshape(w_q.shape[0], -1)) * mult + bias
            y = y.view(b, oh * ow, -1).transpose(1, 2).reshape(b, -1, oh, ow)
        if l["post"]["relu"]:
            y = torch.relu(y)
        if l["post"].get("pool"):
            y = F.max_pool2d(y, l["post"]["pool"])
        x = y
    return x


# ---- float modules: their state_dict names are what `faultloop import` reads --

class MLP(torch.nn.Module):
    """widths [784, ..., 10]: Linear layers fc0, fc1, ... with ReLU between."""

    def __init__(self, widths):
        super().__init__()
        self.n = len(widths) - 1
        for i in range(self.n):
            setattr(self, f"fc{i}", torch.nn.Linear(widths[i], widths[i + 1]))

    def forward(self, x):
        x = x.flatten(1)
        for i in range(self.n):
            x = getattr(self, f"fc{i}")(x)
            if i < self.n - 1:
                x = torch.relu(x)
        return x


class CNN(torch.nn.Module):
    """faultloop's cnn: conv0, conv1 (k x k, same padding, ReLU, 2x2 max pool), fc0."""

    def __init__(self, channels=(8, 16), kernel=3, classes=10, input=(1, 28, 28)):
        super().__init__()
        c, h, w = input
        self.n = len(channels)
        for i, oc in enumerate(channels):
            setattr(self, f"conv{i}", torch.nn.Conv2d(c, oc, kernel, padding=kernel // 2))
            c, h, w = oc, h // 2, w // 2
        self.fc0 = torch.nn.Linear(c * h * w, classes)

    def forward(self, x):
        for i in range(self.n):
            x = F.max_pool2d(torch.relu(getattr(self, f"conv{i}")(x)), 2)
        return self.fc0(x.flatten(1))


# ---- data -------------------------------------------------------------------

def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes")
    nd = raw[3]
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    data = torch.frombuffer(bytearray(raw[4 + 4 * nd:]), dtype=torch.uint8)
    return data.view(*dims)


def find(dir, stems, kind):
    for stem in stems:
        for sep in "-.":
            for ext in ("", ".gz"):
                p = os.path.join(dir, f"{stem}{sep}{kind}-ubyte{ext}")
                if os.path.isfile(p):
                    return p
    raise FileNotFoundError(f"{dir}: no {stems[0]}-{kind}-ubyte[.gz]")


def load_split(dir, split, limit=None):
    """images [N, 1, H, W] float32 (uint8 / 255.0, as faultloop), labels int64."""
    stems = {"train": [("train-images", "train-labels")],
             "test": [("t10k-images", "t10k-labels"), ("test-images", "test-labels")]}[split]
    img = find(dir, [s[0] for s in stems], "idx3")
    lbl = find(dir, [s[1] for s in stems], "idx1")
    x, y = read_idx(img), read_idx(lbl)
    if limit:
        x, y = x[:limit], y[:limit]
    return x.unsqueeze(1).to(torch.float32) / 255.0, y.to(torch.int64)


# ---- command line -------------------------------------------------------------

def cmd_logits(a):
    tensors, layers = load_export(a.model)
    x, y = load_split(a.data_dir, "test", a.limit)
    with torch.no_grad():
        logits = forward_int8(tensors, layers, x).contiguous()
    save_file({"logits": logits, "labels": y}, a.out)
    acc = (logits.argmax(1) == y).double().mean().item()
    print(json.dumps({"samples": len(y), "accuracy": acc, "classes": logits.shape[1]}))


def cmd_train(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)  # deterministic and fair on shared cores
    widths = [int(w) for w in a.widths.split("-")]
    model = MLP(widths)
    x, y = load_split(a.data_dir, "train", a.train_samples)
    xt, yt = load_split(a.data_dir, "test", a.limit)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    g = torch.Generator().manual_seed(a.seed)
    for _ in range(a.steps):
        idx = torch.randint(0, len(y), (a.batch,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).double().mean().item()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.out)
    print(json.dumps({"spec": "mlp:" + a.widths, "steps": a.steps, "samples": len(yt),
                      "accuracy": acc, "loss": loss.item()}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits", help="int8 logits of an export on test images")
    lg.add_argument("model")
    lg.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    lg.add_argument("--limit", type=int, default=None, help="first N test images")
    lg.add_argument("-o", "--out", required=True, help="safetensors file: logits [N, classes], labels [N]")
    tr = sub.add_parser("train", help="train a float MLP, save its state_dict as safetensors")
    tr.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    tr.add_argument("--widths", default="784-256-128-10")
    tr.add_argument("--steps", type=int, default=300)
    tr.add_argument("--batch", type=int, default=64)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument("--train-samples", type=int, default=5000, help="first N training images")
    tr.add_argument("--limit", type=int, default=None, help="first N test images to evaluate")
    tr.add_argument("-o", "--out", required=True)
    a = p.parse_args(argv)
    {"logits": cmd_logits, "train": cmd_train}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
