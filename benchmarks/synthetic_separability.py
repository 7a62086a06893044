"""Is the synthetic expression dataset a real recognition task?

Generates train/val/test faces in memory (disjoint identities) and reports the test accuracy of
  * a single-statistic baseline (mean intensity, binned; and mean colour, logistic regression),
  * a linear classifier (multinomial logistic regression) on raw pixels, weight decay picked on val,
  * a small CNN trained for a fixed number of epochs on CPU,
against chance (1/7). A generator worth training on should defeat the first two and not the third.

    .venv/bin/python benchmarks/synthetic_separability.py            # ~2-3 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from udc.sdk.labels import LABELS
from udc.train.synthetic.dataset import generate_arrays


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def binned_statistic_accuracy(train_stat: np.ndarray, y_train: np.ndarray, test_stat: np.ndarray,
                              y_test: np.ndarray, bins: int = 20) -> float:
    """Best classifier of one scalar: quantile bins on train, majority class per bin."""
    edges = np.quantile(train_stat, np.linspace(0, 1, bins + 1)[1:-1])
    tb, sb = np.digitize(train_stat, edges), np.digitize(test_stat, edges)
    vote = np.array([np.bincount(y_train[tb == b], minlength=len(LABELS)).argmax() if (tb == b).any() else 0
                     for b in range(bins)])
    return float((vote[sb] == y_test).mean())


def fit_logistic(x: torch.Tensor, y: torch.Tensor, weight_decay: float, epochs: int = 60, lr: float = 1e-3,
                 seed: int = 0) -> nn.Linear:
    """Multinomial logistic regression with Adam on standardised features."""
    torch.manual_seed(seed)
    model = nn.Linear(x.shape[1], len(LABELS))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


class SmallCNN(nn.Module):
    """Four 3x3 conv blocks (32-64-96-128 channels; the first with stride 2, two max-pools), global
    average pooling, a linear head: about 0.19 M parameters, 41 M MACs per 64x64 image."""

    def __init__(self, classes: int = len(LABELS)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out, stride, pool in ((32, 2, False), (64, 1, True), (96, 1, True), (128, 1, False)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class Standardise(nn.Module):
    """Per-channel standardisation with statistics measured on the training set."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", x.mean((0, 2, 3), keepdim=True))
        self.register_buffer("std", x.std((0, 2, 3), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def train_cnn(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0, batch: int = 32) -> nn.Module:
    """AdamW + one-cycle schedule; augmentation: horizontal flips and +-4 px shifts."""
    torch.manual_seed(seed)
    model = nn.Sequential(Standardise(x), SmallCNN())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb = x[idx]
            flip = torch.rand(len(xb)) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            dx, dy = (int(v) for v in torch.randint(-4, 5, (2,)))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-per-class", type=int, default=300)
    ap.add_argument("--val-per-class", type=int, default=50)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20, help="CNN epochs")
    ap.add_argument("--linear-epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the faces")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    t0 = time.perf_counter()
    counts = {"train": args.train_per_class, "val": args.val_per_class, "test": args.test_per_class}
    data = {split: generate_arrays(n, args.size, args.seed, split, workers=args.workers) for split, n in counts.items()}
    t_gen = time.perf_counter() - t0
    (xi_tr, y_tr, _), (xi_va, y_va, _), (xi_te, y_te, _) = data["train"], data["val"], data["test"]
    x_tr, x_va, x_te = _to_tensor(xi_tr), _to_tensor(xi_va), _to_tensor(xi_te)
    yt_tr, yt_va, yt_te = (torch.from_numpy(y) for y in (y_tr, y_va, y_te))
    rows: list[tuple[str, float, str]] = [("chance", 1.0 / len(LABELS), "")]

    # single statistics
    mean_tr, mean_te = x_tr.mean((1, 2, 3)).numpy(), x_te.mean((1, 2, 3)).numpy()
    rows.append(("mean intensity (20 bins)", binned_statistic_accuracy(mean_tr, y_tr, mean_te, y_te), "1 feature"))
    rgb_tr, rgb_te = x_tr.mean((2, 3)), x_te.mean((2, 3))
    mu, sd = rgb_tr.mean(0), rgb_tr.std(0)
    rgb_model = fit_logistic((rgb_tr - mu) / sd, yt_tr, 0.0, epochs=100, lr=1e-2)
    rows.append(("mean colour (logistic)", accuracy(rgb_model, (rgb_te - mu) / sd, yt_te), "3 features"))

    # linear on raw pixels, weight decay chosen on val
    t0 = time.perf_counter()
    flat_tr, flat_va, flat_te = x_tr.flatten(1), x_va.flatten(1), x_te.flatten(1)
    mu, sd = flat_tr.mean(0), flat_tr.std(0) + 1e-3
    best = (-1.0, 0.0, None)
    for wd in (1e-4, 1e-3, 1e-2):
        model = fit_logistic((flat_tr - mu) / sd, yt_tr, wd, epochs=args.linear_epochs)
        val = accuracy(model, (flat_va - mu) / sd, yt_va)
        if val > best[0]:
            best = (val, wd, model)
    val_acc, wd, model = best
    rows.append(("linear on raw pixels", accuracy(model, (flat_te - mu) / sd, yt_te),
                 f"wd={wd:g} (val {val_acc:.3f}), train {accuracy(model, (flat_tr - mu) / sd, yt_tr):.3f}, "
                 f"{time.perf_counter() - t0:.0f}s"))

    # small CNN
    t0 = time.perf_counter()
    cnn = train_cnn(x_tr, yt_tr, args.epochs, args.seed)
    rows.append(("small CNN", accuracy(cnn, x_te, yt_te),
                 f"{args.epochs} epochs, val {accuracy(cnn, x_va, yt_va):.3f}, train {accuracy(cnn, x_tr, yt_tr):.3f}, "
                 f"{time.perf_counter() - t0:.0f}s"))

    print(f"synthetic faces {args.size}x{args.size}: train {len(y_tr)}, val {len(y_va)}, test {len(y_te)} "
          f"(per class {args.train_per_class}/{args.val_per_class}/{args.test_per_class}), generated in {t_gen:.0f}s")
    print(f"{'classifier':<28} {'test acc':>8}  notes")
    print("-" * 72)
    for name, acc, note in rows:
        print(f"{name:<28} {acc * 100:7.1f}%  {note}")
    pred = predict(cnn, x_te)
    per = [f"{name} {float((pred[yt_te == k] == k).float().mean()) * 100:.0f}%" for k, name in enumerate(LABELS)]
    print("per-class test accuracy of the CNN: " + ", ".join(per))
    print(f"total {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    main()
