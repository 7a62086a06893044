"""LRDif training: stage 1 (FPEN-S1 + UDCformer, labels in) and stage 2 (FPEN-S2 + denoiser +
UDCformer, L_ce + L_kl, the whole T-step reverse chain in every step), on one process or under
``torchrun`` with DDP.

Reproducibility is by construction, not by saving RNG states: the epoch's batch order, each
sample's augmentation, UDC degradation and diffusion noise are drawn from generators seeded by
``(seed, epoch, sample index)``. A resumed run (``--resume``, from an epoch end or a mid-epoch
``save_every`` checkpoint) and a DDP run with the same global batch therefore compute what the
uninterrupted single-process run computes.

The same loop trains the DDAMFN baseline (``cfg.family == "ddamfn"``, ``train/ddamfn.py``): only the
model and the step module differ (``StageStep`` vs ``DDAMFNStep``, both return loss, logits, CE).
``cfg.ial_weight > 0`` adds the intensity-aware loss ``ial_weight * L_IA`` to either family's loss.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from udc.sdk.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from udc.sdk.models.config import get_config, lrdif_label
from udc.sdk.faces.pipeline import to_model_input
from udc.train.losses.lrdif import ce_loss, epr_kl_loss
from udc.train.losses.fer import intensity_aware_loss
from udc.sdk.models.ddamfn.model import DDAMFN
from udc.sdk.models.lrdif.model import LRDif, build_model
from udc.sdk.console.quiet import show_progress  # progress bars on a terminal only, never in a log file

from .config import FALLBACK, VARIANT_SETTINGS, TrainConfig
from .data import CropDataset, Crops, collate, epoch_batches, prepare_crops, random_erase
from .feature_cache import FeatureCache, module_hash
from .metrics import Metrics, confusion_matrix

EVAL_NOISE_EPOCH = 10**6  # the "epoch" whose noise draws are used for evaluation: fixed across runs


def sample_noise(indices, epoch: int, seed: int, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
    """Per-sample N(0, I) draws keyed by (seed, epoch, index): independent of batching and ranks."""
    out = []
    for i in indices:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch, int(i), stream]).generate_state(1)[0]))
        out.append(torch.randn(shape, generator=g))
    return torch.stack(out, dim=-2) if len(shape) > 1 else torch.stack(out)


class StageStep(nn.Module):
    """One training forward as a module (what DDP wraps): returns loss, logits, ce, kl.

    ``clip_in`` is either cached/frozen CLIP features ``[B, D]`` or, when the tower is trained,
    the images ``[B, 3, S, S]`` it encodes here (so DDP sees its parameters used).
    ``ial_weight > 0`` adds ``ial_weight * L_IA`` (intensity-aware loss) to eq. 13 (stage 1) and eq. 18 (stage 2)."""

    def __init__(self, model: LRDif, stage: int, variant: str, kl_weight: float, ial_weight: float = 0.0):
        super().__init__()
        self.model, self.stage, self.variant = model, stage, variant
        self.kl_weight = 0.0 if variant == "V2" else kl_weight
        self.ial_weight = ial_weight

    def _ial(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return loss + self.ial_weight * intensity_aware_loss(logits, labels) if self.ial_weight else loss

    def forward(self, clip_in, image, landmarks, labels, noise, step_noise, label_mask=None):
        m = self.model
        f_img = m.clip_image(clip_in) if clip_in.dim() == 4 else clip_in
        if self.stage == 1:
            z = m.epr_stage1(f_img, labels, label_mask)
            logits = m.udcformer(image, landmarks, z)
            ce = ce_loss(logits, labels)
            return self._ial(ce, logits, labels), logits, ce.detach(), torch.zeros(())
        with torch.no_grad():
            z1 = m.epr_stage1(f_img, labels)  # frozen FPEN-S1: the target EPR
        z2 = m.epr_stage2(f_img, noise, z_s1=z1, step_noise=step_noise, use_diffusion=self.variant != "V1")
        logits = m.udcformer(image, landmarks, z2)
        ce, kl = ce_loss(logits, labels), epr_kl_loss(z1, z2)
        return self._ial(ce + self.kl_weight * kl, logits, labels), logits, ce.detach(), kl.detach()


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return _dist_info()


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True, log=print,
                 crops_memo: dict | None = None):
        """``crops_memo``: a dict shared by several trainings in one process (``udc-train ablations``): the aligned
        crops of a (dataset, split, crop size, landmark fallback) are prepared once and reused (read-only)."""
        self.cfg = cfg.validate()
        self._crops_memo = crops_memo
        self.family = cfg.family
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(cfg.device)
        self.rank, self.world = setup_distributed(self.device)
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {self.world} processes")
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.progress = progress and self.rank == 0
        self.log = log if self.rank == 0 else (lambda *a, **k: None)
        torch.manual_seed(cfg.seed)
        self.out = Path(cfg.out)
        self.model = self._build_model().to(self.device)
        self.mcfg = self.model.cfg
        self._load_data()
        self._setup_optim()
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best, self.history = -1.0, []
        self._sums = torch.zeros(4, dtype=torch.float64)  # running sums of the current epoch (saved mid-epoch)
        if resume:
            self._resume()

    # ------------------------------------------------------------------ setup
    def _build_model(self) -> LRDif | DDAMFN:
        cfg = self.cfg
        if self.family == "ddamfn":
            from .ddamfn import build_ddamfn

            self.train_clip, self.label_dropout = False, 0.0
            model = build_ddamfn(cfg)
            if self.world > 1 and self.device.type == "cuda":  # BN statistics over the global batch
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return model
        if cfg.stage == 1:
            mcfg = get_config(cfg.model).replace(**self._model_overrides())
            with warnings.catch_warnings():
                if self.rank:
                    warnings.simplefilter("ignore")
                model = build_model(mcfg, clip=cfg.clip)
        else:
            s1 = load_checkpoint(cfg.stage1)
            if cfg.dil_form and cfg.dil_form != s1.cfg.udcformer.dil_form:
                raise ValueError(f"dil_form {cfg.dil_form!r}: the stage-1 checkpoint {cfg.stage1} has the "
                                 f"{s1.cfg.udcformer.dil_form!r} DIL form (it is fixed in stage 1)")
            mcfg = s1.cfg.replace(**self._model_overrides())
            model = LRDif(mcfg, s1.label_encoder)
            model.load_state_dict(s1.state_dict())  # diffusion shapes depend neither on T nor on the parameterisation
            model.clip_source = s1.clip_source
        self.label_dropout = cfg.label_dropout if cfg.label_dropout is not None else \
            (0.5 if cfg.stage == 1 and model.clip_source is None else 0.0)
        self.train_clip = cfg.stage == 2 and (cfg.train_clip == "yes" or
                                              (cfg.train_clip == "auto" and model.clip_source is None))
        params = self._stage_params(model) + (list(model.clip_image.parameters()) if self.train_clip else [])
        trainable = set(map(id, params))
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
        return model

    def _model_overrides(self) -> dict:
        """Model-config fields the training options override (T, diffusion parameterisation, DIL form)."""
        cfg, out = self.cfg, {}
        if cfg.steps:
            out["diffusion.steps"] = cfg.steps
        if cfg.parameterization:
            out["diffusion.parameterization"] = cfg.parameterization
        if cfg.dil_form and cfg.stage == 1:
            out["udcformer.dil_form"] = cfg.dil_form
        return out

    def _stage_params(self, model: LRDif) -> list[nn.Parameter]:
        params = model.stage_parameters(self.cfg.stage)
        if self.cfg.stage == 2 and self.cfg.variant == "V1":  # no diffusion: the denoiser is not trained
            skip = set(map(id, model.diffusion.parameters()))
            params = [p for p in params if id(p) not in skip]
        return params

    def _load_data(self) -> None:
        from .datasets import open_dataset
        from .datasets.landmark_cache import ensure_landmarks

        cfg = self.cfg
        index = open_dataset(cfg.data, cfg.data_format)
        fallback = FALLBACK[cfg.landmark_fallback]
        if self.rank == 0:
            landmarks = ensure_landmarks(index, progress=self.progress, fallback=fallback)
        if self.world > 1:
            dist.barrier()
        if self.rank:
            landmarks = ensure_landmarks(index, progress=False, fallback=fallback)
        val_split = cfg.val_split if index.split(cfg.val_split) else "test"
        size = self.mcfg.image_size

        def crops(split: str) -> Crops:
            if self._crops_memo is None:
                return prepare_crops(index.split(split), landmarks, size, self.progress)
            key = (str(Path(cfg.data).resolve()), index.name, split, size, cfg.landmark_fallback)
            if key not in self._crops_memo:
                self._crops_memo[key] = prepare_crops(index.split(split), landmarks, size, self.progress)
            return self._crops_memo[key]

        self.train_crops = crops("train")
        self.val_crops = crops(val_split)
        self.val_split = val_split
        if len(self.train_crops) == 0:
            raise ValueError(f"{cfg.data}: no usable training faces (split 'train')")
        self.log(f"data {index.name} at {cfg.data}: {len(self.train_crops)} train / {len(self.val_crops)} {val_split} "
                 f"faces ({self.train_crops.skipped + self.val_crops.skipped} without a face skipped; landmarks: "
                 f"{landmarks.summary() if hasattr(landmarks, 'summary') else len(landmarks)})")
        self.train_set = CropDataset(self.train_crops, True, cfg.seed, cfg.flip, cfg.rotate_deg, cfg.scale_jitter, cfg.shift,
                                     cfg.affine_prob)
        self.cache = None
        if self.train_clip:
            self.log("CLIP image tower has no pretrained weights: training it in stage 2 (train_clip=auto); "
                     "the feature cache is off")
        elif cfg.feature_cache and self.family == "lrdif":
            root = Path(cfg.cache_dir) if cfg.cache_dir else self.out.parent / "clip_cache"
            self.cache = FeatureCache(root, module_hash(self.model.clip_image))
            t0 = time.perf_counter()
            self.model.eval()
            n = 0
            for crops, flips in ((self.train_crops, (False, True) if cfg.flip else (False,)), (self.val_crops, (False,))):
                for f in flips:
                    n += self.cache.fill(self.model.clip_image, crops.images, crops.hashes, f, self.mcfg.mean,
                                         self.mcfg.std, self.device)
            if n and self.rank == 0:
                self.cache.save()
            self.log(f"CLIP feature cache {self.cache.dir}: {n} computed, {len(self.cache.table)} stored "
                     f"({time.perf_counter() - t0:.1f}s)")
        self.udc = None
        if cfg.udc_prob > 0:
            from .udc_sim.convert import DegraderBank

            self.udc = DegraderBank("random", cfg.seed)

    def _steps_per_epoch(self) -> int:
        n = len(epoch_batches(len(self.train_crops), self._batch_size(), self.cfg.seed, 0, True, True))
        return min(n, self.cfg.max_steps_per_epoch) if self.cfg.max_steps_per_epoch else n

    def _batch_size(self) -> int:
        return min(self.cfg.batch_size, len(self.train_crops) - len(self.train_crops) % self.world)

    def _setup_optim(self) -> None:
        cfg = self.cfg
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            self.opt = torch.optim.SGD(self.params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.Adam(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = cfg.epochs * self._steps_per_epoch()
        spe = self._steps_per_epoch()

        def factor(step: int) -> float:
            warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
            if cfg.schedule == "cosine":
                return warm * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))
            if cfg.schedule == "step":
                return warm * 0.1 ** ((step // max(1, spe)) // cfg.step_size)
            return warm

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)
        if self.family == "ddamfn":
            from .ddamfn import DDAMFNStep

            step = DDAMFNStep(self.model, cfg.att_weight, cfg.ial_weight, cfg.att_form)
        else:
            step = StageStep(self.model, cfg.stage, cfg.variant, cfg.kl_weight, cfg.ial_weight)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            step = DDP(step, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step_module = step

    # ------------------------------------------------------------------ checkpoints
    def _train_state(self) -> dict:
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "world_size": self.world, "best": self.best, "history": self.history,
                "epoch_sums": self._sums.tolist(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "train_config": self.cfg.to_dict()}

    def _save(self, name: str, with_state: bool = True) -> None:
        if self.rank:
            return
        extra = {"family": self.family, "stage": self.cfg.stage, "variant": self.cfg.variant,
                 "best_val_accuracy": self.best, "val_split": self.val_split, "ial_weight": self.cfg.ial_weight,
                 "model_label": self.model_label, "recipe": self.cfg.recipe}
        if self.family == "lrdif":
            extra["clip_pretrained"] = self.model.clip_source is not None
        if self.family == "ddamfn":
            extra.update(att_weight=self.cfg.att_weight, att_form=self.cfg.att_form)
        if with_state:
            extra["train_state"] = self._train_state()
        save_checkpoint(self.model, self.out / name, extra=extra)

    def _resume(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            self.log(f"--resume: no {path}; starting from scratch")
            return
        payload = read_checkpoint(path)
        st = payload["extra"].get("train_state")
        if st is None:
            raise ValueError(f"{path} holds no training state")
        self.model.load_state_dict(payload["state_dict"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.epoch, self.step_in_epoch, self.global_step = st["epoch"], st["step_in_epoch"], st["global_step"]
        self.best, self.history = st["best"], st["history"]
        self._sums = torch.tensor(st["epoch_sums"], dtype=torch.float64)
        self.log(f"resumed from {path}: epoch {self.epoch + 1}, step {self.step_in_epoch}")

    # ------------------------------------------------------------------ batches
    def _clip_features(self, crops: Crops, batch: dict, images: torch.Tensor, clip_views: np.ndarray,
                       degraded: list[int]) -> torch.Tensor:
        """Cached features, frozen-tower features, or (tower trained) the augmented images themselves.

        ``clip_views`` [B, S, S, 3] uint8 is the CLIP view of the batch, already UDC-degraded at the rows in
        ``degraded`` (with the draw UDCformer's view got there). The feature cache holds clean views only, so it
        steps aside for those rows: their features come from the frozen tower run on the degraded view."""
        if self.train_clip:
            return images  # the tower is trained on UDCformer's own (augmented, degraded) input
        idx, flipped = batch["index"].tolist(), batch["flipped"].tolist()
        if self.cache is None:
            with torch.no_grad():
                return self.model.clip_image(to_model_input(clip_views, self.mcfg.mean, self.mcfg.std).to(self.device))
        feats = self.cache.get([crops.hashes[i] for i in idx], flipped).to(self.device)  # [B, D], clean views
        if degraded:
            with torch.no_grad():
                feats[degraded] = self.model.clip_image(
                    to_model_input(clip_views[degraded], self.mcfg.mean, self.mcfg.std).to(self.device)).to(feats.dtype)
        return feats

    def _udc_rows(self, batch: dict, epoch: int) -> list[int]:
        """Rows of the batch that get a UDC degradation this epoch (drawn per (seed, epoch, sample index))."""
        if self.udc is None:
            return []
        return [k for k, i in enumerate(batch["index"].tolist())
                if np.random.default_rng([self.cfg.seed, epoch, i, 3]).random() < self.cfg.udc_prob]

    def _views(self, batch: dict, epoch: int, with_clip: bool) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
        """``(image view, CLIP view, degraded rows)`` as uint8 [B, S, S, 3]; with ``udc_prob > 0`` both views of a
        degraded sample get the *same* UDC draw (device profile and noise seed, keyed ``epoch:index``), as on a
        phone, where the CLIP branch and UDCformer both see the one UDC image."""
        images = batch["image"]
        clip_views = batch["clip"] if with_clip else None
        rows = self._udc_rows(batch, epoch)
        if rows:
            idx = batch["index"].tolist()
            keys = [f"{epoch}:{idx[k]}" for k in rows]
            src = [images[k] for k in rows] + ([clip_views[k] for k in rows] if with_clip else [])
            out, _ = self.udc.degrade(src, keys + (keys if with_clip else []))
            images = images.copy()
            images[rows] = np.stack(out[:len(rows)])
            if with_clip:
                clip_views = clip_views.copy()
                clip_views[rows] = np.stack(out[len(rows):])
        return images, clip_views, rows

    def _model_input(self, views: np.ndarray, batch: dict, epoch: int) -> torch.Tensor:
        """Normalised ``[B, 3, S, S]`` input of UDCformer (or DDAMFN), randomly erased where drawn."""
        x = to_model_input(views, self.mcfg.mean, self.mcfg.std)
        x = random_erase(x, batch["index"].tolist(), self.cfg.seed, epoch, self.cfg.random_erasing,
                         tuple(self.cfg.erasing_scale))
        return x.to(self.device)

    def _images(self, batch: dict, epoch: int) -> torch.Tensor:
        """UDCformer's (or DDAMFN's) input: the augmented view, UDC-degraded where drawn, normalised, erased."""
        return self._model_input(self._views(batch, epoch, False)[0], batch, epoch)

    def _label_mask(self, batch: dict, epoch: int) -> torch.Tensor | None:
        if self.cfg.stage != 1 or self.label_dropout <= 0:
            return None
        keep = [float(np.random.default_rng([self.cfg.seed, epoch, int(i), 5]).random() >= self.label_dropout)
                for i in batch["index"].tolist()]
        return torch.tensor(keep, device=self.device).unsqueeze(1)

    def _noise(self, batch: dict, epoch: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.cfg.stage == 1:
            return None, None
        idx, c, t = batch["index"].tolist(), self.mcfg.fpen.epr_dim, self.mcfg.diffusion.steps
        noise = sample_noise(idx, epoch, self.cfg.seed, (c,)).to(self.device)
        step_noise = sample_noise(idx, epoch, self.cfg.seed, (t, c), stream=1).to(self.device) \
            if self.cfg.variant == "V3" else None
        return noise, step_noise

    def _forward(self, batch: dict, epoch: int, labels: torch.Tensor):
        """The family's training forward: ``(loss, logits, ce)``."""
        if self.family == "ddamfn":
            return self.step_module(self._images(batch, epoch), labels)
        views, clip_views, degraded = self._views(batch, epoch, with_clip=not self.train_clip)
        images = self._model_input(views, batch, epoch)
        clip_in = self._clip_features(self.train_crops, batch, images, clip_views, degraded)
        noise, step_noise = self._noise(batch, epoch)
        loss, logits, ce, _ = self.step_module(clip_in, images, batch["landmarks"].to(self.device),
                                               labels, noise, step_noise, self._label_mask(batch, epoch))
        return loss, logits, ce

    @property
    def model_label(self) -> str:
        """What the numbers of this run must be called: "LRDif without pretrained CLIP" unless CLIP weights were given."""
        return model_label(self.model)

    def describe(self) -> str:
        """One line: what is trained (used in the log and the CLI's summary)."""
        cfg = self.cfg
        ial = f", IAL lambda={cfg.ial_weight:g}" if cfg.ial_weight else ""
        if self.family == "ddamfn":
            gca = f", GCA on stages {list(self.mcfg.gca_stages)}" if self.mcfg.gca_stages else ""
            return (f"DDAMFN {self.mcfg.name} ({self.mcfg.image_size}px, {self.mcfg.num_heads} heads, "
                    f"att_weight={cfg.att_weight:g} ({cfg.att_form}){gca}{ial})")
        drop = f", label dropout {self.label_dropout:g}" if cfg.stage == 1 and self.label_dropout else ""
        what = f"LRDif_S2-{cfg.variant}: {VARIANT_SETTINGS[cfg.variant]}" if cfg.stage == 2 else "labels in"
        return (f"{self.model_label}: stage {cfg.stage} ({what}), model {self.mcfg.name}, "
                f"T={self.mcfg.diffusion.steps} ({self.mcfg.diffusion.parameterization}), "
                f"DIL {self.mcfg.udcformer.dil_form}{drop}{ial}")

    # ------------------------------------------------------------------ loops
    def train_epoch(self, epoch: int, stop_at_step: int | None = None) -> dict:
        """One epoch from ``self.step_in_epoch``; reaching global step ``stop_at_step`` simulates a kill."""
        from tqdm import tqdm

        self.model.train()
        self.train_set.set_epoch(epoch)
        bs = self._batch_size()
        batches = epoch_batches(len(self.train_set), bs, self.cfg.seed, epoch, True, True)[: self._steps_per_epoch()]
        local = bs // self.world
        sums = self._sums if self.step_in_epoch else torch.zeros(4, dtype=torch.float64)  # loss*n, ce*n, correct, n
        self._sums = sums
        what = "ddamfn" if self.family == "ddamfn" else f"stage {self.cfg.stage}"
        bar = tqdm(total=len(batches), initial=self.step_in_epoch, desc=f"{what} epoch {epoch + 1}",
                   unit="step", disable=not (self.progress and show_progress()), leave=False)
        for b in range(self.step_in_epoch, len(batches)):
            if stop_at_step is not None and self.global_step >= stop_at_step:
                raise KeyboardInterrupt(f"stopped at step {self.global_step} (simulated interruption)")
            mine = batches[b][self.rank * local:(self.rank + 1) * local]
            batch = collate([self.train_set[i] for i in mine])
            labels = batch["label"].to(self.device)
            loss, logits, ce = self._forward(batch, epoch, labels)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            n = len(mine)
            sums += torch.tensor([loss.item() * n, ce.item() * n, (logits.argmax(1) == labels).sum().item(), n],
                                 dtype=torch.float64)
            self.step_in_epoch, self.global_step = b + 1, self.global_step + 1
            bar.set_postfix(loss=f"{sums[0] / sums[3]:.3f}", acc=f"{sums[2] / sums[3]:.3f}")
            bar.update(1)
            if self.cfg.save_every and self.step_in_epoch % self.cfg.save_every == 0 and self.step_in_epoch < len(batches):
                self._save("last.pt")
        bar.close()
        if self.world > 1:
            dist.all_reduce(sums)
        return {"train_loss": float(sums[0] / max(1, sums[3])), "train_ce": float(sums[1] / max(1, sums[3])),
                "train_acc": float(sums[2] / max(1, sums[3]))}

    @torch.no_grad()
    def evaluate(self, crops: Crops | None = None, batch_size: int = 128) -> Metrics:
        crops = crops if crops is not None else self.val_crops
        return evaluate_crops(self.model, crops, self.cfg.stage, self.cfg.seed, self.device, batch_size,
                              cache=self.cache if crops is self.val_crops or crops is self.train_crops else None,
                              use_diffusion=self.cfg.variant != "V1", noisy_reverse=self.cfg.variant == "V3")

    def fit(self, stop_at_step: int | None = None) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.log(f"{self.describe()}, {cfg.epochs} epochs x {self._steps_per_epoch()} steps of "
                 f"{self._batch_size()} on {self.device}" + (f" x {self.world} processes" if self.world > 1 else ""))
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            stats = self.train_epoch(self.epoch, stop_at_step)
            m = self.evaluate() if len(self.val_crops) else None
            row = {"epoch": self.epoch + 1, **stats, "val_acc": m.accuracy if m else float("nan"),
                   "val_uar": m.uar if m else float("nan"), "lr": self.sched.get_last_lr()[0],
                   "seconds": round(time.perf_counter() - t0, 2)}
            self.history.append(row)
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            # stage 1 validates with the true labels in (an upper bound that saturates near 100 %): a tie goes
            # to the later epoch, so stage 2 starts from the longest-trained stage-1 model, not the first at 100 %
            improved = m is not None and (m.accuracy > self.best or
                                          (self.family == "lrdif" and cfg.stage == 1 and m.accuracy == self.best))
            if improved:
                self.best = m.accuracy
            self._save("last.pt")
            if improved or m is None:
                self._save("best.pt", with_state=False)
            self._write_metrics()
            self.log(f"epoch {row['epoch']}/{cfg.epochs}: loss {row['train_loss']:.4f} train acc {100 * row['train_acc']:.1f}% "
                     f"| {self.val_split} acc {100 * row['val_acc']:.1f}% UAR {100 * row['val_uar']:.1f}% "
                     f"| {row['seconds']:.1f}s" + (" *" if improved else ""))
        if self.world > 1:
            dist.barrier()
        return {"best_val_accuracy": self.best, "history": self.history, "best": str(self.out / "best.pt")}

    def _write_metrics(self) -> None:
        if self.rank:
            return
        (self.out / "metrics.json").write_text(json.dumps(self.history, indent=2))
        with open(self.out / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.history[0]))
            w.writeheader()
            w.writerows(self.history)


def model_label(model: LRDif | DDAMFN) -> str:
    """The label a model's numbers carry: "LRDif without pretrained CLIP" for an LRDif whose CLIP towers started
    from random init (not the paper's model), "LRDif (pretrained CLIP)" otherwise; DDAMFN as trained here (random
    init: its official code starts from an MS-Celeb-1M pretrained MFN, which no registry carries)."""
    if isinstance(model, DDAMFN):
        return "DDAMFN without MS-Celeb pretraining"
    return lrdif_label(model.clip_source)


@torch.no_grad()
def evaluate_crops(model: LRDif | DDAMFN, crops: Crops, stage: int, seed: int, device, batch_size: int = 128,
                   cache: FeatureCache | None = None, use_diffusion: bool = True, noisy_reverse: bool = False) -> Metrics:
    """Stage 1: with the true labels (the upper bound). Stage 2: label-free, fixed per-sample noise (and, with
    ``noisy_reverse``, the variant V3's per-step noise, also fixed per sample). DDAMFN: the image alone
    (``stage``, ``use_diffusion`` and ``noisy_reverse`` do not apply)."""
    logits = crop_logits(model, crops, stage, seed, device, batch_size, cache, use_diffusion, noisy_reverse)
    pred = logits.argmax(1).numpy() if len(logits) else np.zeros(0, int)
    k = model.cfg.num_classes
    missed = np.bincount(crops.skipped_labels, minlength=k)[:k] if crops.skipped_labels is not None else None
    return Metrics(confusion_matrix(crops.labels, pred, k), model.cfg.labels, pred, missed)


@torch.no_grad()
def crop_logits(model: LRDif | DDAMFN, crops: Crops, stage: int, seed: int, device, batch_size: int = 128,
                cache: FeatureCache | None = None, use_diffusion: bool = True, noisy_reverse: bool = False) -> torch.Tensor:
    """Logits ``[N, K]`` (CPU) of every crop, as :func:`evaluate_crops` scores them (LRDif noise is keyed
    by the crop's index, so the same crop set gives the same logits on every call)."""
    model.eval()
    mcfg = model.cfg
    out = []
    for s in range(0, len(crops), batch_size):
        idx = list(range(s, min(len(crops), s + batch_size)))
        images = to_model_input(crops.images[idx], mcfg.mean, mcfg.std).to(device)
        if isinstance(model, DDAMFN):
            out.append(model(images).float().cpu())
            continue
        lms = torch.from_numpy(crops.landmarks[idx] / mcfg.image_size).float().to(device)
        if cache is not None:
            f_img = cache.get([crops.hashes[i] for i in idx], [False] * len(idx)).to(device)
        else:
            f_img = model.clip_image(images)
        if stage == 1:
            z = model.epr_stage1(f_img, torch.from_numpy(crops.labels[idx]).to(device))
        else:
            noise = sample_noise(idx, EVAL_NOISE_EPOCH, seed, (mcfg.fpen.epr_dim,)).to(device)
            step_noise = sample_noise(idx, EVAL_NOISE_EPOCH, seed, (mcfg.diffusion.steps, mcfg.fpen.epr_dim),
                                      stream=1).to(device) if noisy_reverse and use_diffusion else None
            z = model.epr_stage2(f_img, noise, step_noise=step_noise, use_diffusion=use_diffusion)
        out.append(model.udcformer(images, lms, z).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, mcfg.num_classes)
