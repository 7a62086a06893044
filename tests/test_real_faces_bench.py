"""benchmarks/real_faces.py end to end on a small tree made here: procedural synthetic faces (with their own
landmarks) plus real photos scikit-image ships (the astronaut's face, LFW-subset faces; MediaPipe or the crop
fallback finds their landmarks). Every step runs with tiny settings (tiny models, one step per epoch); the real
numbers come from the benchmark on real data only, never from here."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_benchmark
from PIL import Image

SIZE = 64


def load_bench():
    return load_benchmark("real_faces.py", "udc_real_faces")


def real_crops() -> list[np.ndarray]:
    """Real face crops at SIZE x SIZE: the astronaut's face and four LFW-subset faces (25x25 grayscale, upscaled)."""
    from skimage import data

    astro = data.astronaut()[20:220, 140:340]  # her face with some margin
    crops = [np.asarray(Image.fromarray(astro).resize((SIZE, SIZE), Image.BILINEAR))]
    lfw = data.lfw_subset()[:4]  # the first 100 are faces
    for g in lfw:
        img = Image.fromarray((255 * g).astype(np.uint8)).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        crops.append(np.asarray(img))
    return crops


def make_tree(root: Path) -> Path:
    """FER2013 layout (train/ validation/ test/ <class>/*.jpg|png) with its landmarks68.npz for the synthetic part."""
    from udc.train.synthetic.dataset import generate_dataset

    synth = root.parent / "synth"
    generate_dataset(synth, {"train": 3, "val": 1, "test": 2}, size=SIZE, seed=0, progress=False)
    import shutil

    shutil.copytree(synth, root)
    (root / "val").rename(root / "validation")
    from udc.train.landmark_store import LANDMARKS_FILE, load_landmarks, save_landmarks

    lms = load_landmarks(root / LANDMARKS_FILE)
    save_landmarks(root / LANDMARKS_FILE, {k.replace("val/", "validation/", 1) if k.startswith("val/") else k: v
                                           for k, v in lms.items()})
    names = ["happiness", "neutral", "sadness", "surprise", "anger"]
    for i, crop in enumerate(real_crops()):
        split = "test" if i % 2 == 0 else "train"
        Image.fromarray(crop).save(root / split / names[i] / f"real_{i}.jpg", quality=95)
    return root


@pytest.mark.slow
def test_real_faces_benchmark_runs_every_step_and_resumes(tmp_path, capsys):
    bench = load_bench()
    data = make_tree(tmp_path / "fer")
    out = tmp_path / "out"
    argv = [str(data), "--out", str(out), "--models", "lrdif-tiny,ddamfn-tiny", "--max-epochs", "1", "--max-steps",
            "1", "--batch-size", "8", "--calib-n", "8", "--eval-n", "8", "--bench-iters", "3", "--bench-warmup", "1",
            "--threads", "1", "--udc-profile", "zte_axon30",  # one PSF, not 18
            "--export-model", "ddamfn-tiny",  # one component to lower and quantize (LRDif's four: test_export)
            "--train-jobs", "2"]  # the four trainings in two child processes (--train-only), then the rest here
    res = bench.main(argv)
    cap = capsys.readouterr()
    printed = cap.out
    # one progress line per step on stderr, counted against the right total: the last step is [N/N] host
    steps = re.findall(r"^\[(\d+)/(\d+)\] ([\w-]+)", cap.err, re.M)
    assert steps and steps[-1][2] == "host" and steps[-1][0] == steps[-1][1], steps[-3:]
    assert all(int(i) <= int(n) for i, n, _ in steps)
    # one table with every run, the int8 row, the host and its measured GEMM peak
    assert "test WAR %" in printed and "torch.mm peak" in printed and "int8 (ExecuTorch)" in printed
    assert "LRDif without pretrained CLIP" in printed  # item 5: the label wherever the numbers appear
    assert "QUICK RUN" in printed
    assert set(res["runs"]) == {"lrdif-tiny-clean", "lrdif-tiny-udc", "ddamfn-tiny-clean", "ddamfn-tiny-udc"}
    assert set(res["eval"]) == {f"{m}-{p}" for m in ("lrdif-tiny", "ddamfn-tiny")
                                for p in ("clean-on-clean", "udc-on-udc", "clean-on-udc")}
    # every test face is scored: 14 synthetic + 3 real; the landmark paths are counted
    n_test = 14 + 3
    assert res["tree"]["counts"]["test"] and sum(res["tree"]["counts"]["test"].values()) == n_test
    for e in res["eval"].values():
        assert e["n"] == n_test and 0.0 <= e["war"] <= 1.0 and 0.0 <= e["uar"] <= 1.0
        assert e["model_label"] in ("LRDif without pretrained CLIP", "DDAMFN without MS-Celeb pretraining")
    paths = res["landmarks"]["paths"]
    assert paths["dataset"] == 7 * (3 + 1 + 2) and sum(paths.values()) == 7 * 6 + 5
    assert res["runs"]["lrdif-tiny-udc"]["model_label"] == "LRDif without pretrained CLIP"
    assert {p.name for p in (out / "logs").iterdir()} == {f"train-{m}-{c}.log" for m in ("lrdif-tiny", "ddamfn-tiny")
                                                          for c in ("clean", "udc")}
    # the UDC twin exists and differs from the clean faces
    clean = np.asarray(Image.open(next((out / "data" / "clean" / "test").rglob("*.png"))).convert("RGB"), float)
    rel = next((out / "data" / "clean" / "test").rglob("*.png")).relative_to(out / "data" / "clean")
    udc = np.asarray(Image.open(out / "data" / "udc" / rel).convert("RGB"), float)
    assert np.abs(clean - udc).mean() > 2.0
    # the deployed bundle: int8 ExecuTorch, parity on real test faces, accuracy over every test face, host p50
    assert res["best"] == "ddamfn-tiny-udc"
    assert (Path(res["export"]["bundle"]) / "manifest.json").is_file()
    assert json.loads((Path(res["export"]["bundle"]) / "manifest.json").read_text())["quant"] == "int8"
    assert 0.0 <= res["parity"]["top1_agreement"] <= 1.0 and res["parity"]["cosine"] > 0.5
    assert res["bundle_accuracy"]["n"] == n_test
    assert res["bench"]["p50_ms"] > 0 and res["host"]["gemm_peak_gflops"] > 0
    assert (out / "confusion_best.png").is_file() and (out / "results.json").is_file()
    # resumable: a rerun skips every finished step; a lost step (a killed run) is redone alone
    (out / "state" / "host.json").unlink()
    again = bench.main(argv + ["--quiet"])
    assert again["runs"] == res["runs"] and again["eval"] == res["eval"]
    assert again["host"]["gemm_peak_gflops"] > 0
    # --int8-top1: a finished run exports, checks and benchmarks again, stricter, beside the first bundle; no
    # training or evaluation is redone
    strict = bench.main(argv + ["--quiet", "--int8-top1", "0.99"])
    assert strict["runs"] == res["runs"] and strict["eval"] == res["eval"]
    sb = Path(strict["export"]["bundle"])
    assert sb.name == "ddamfn-tiny-udc-int8-top1-0.99.udc" and sb != Path(res["export"]["bundle"])
    assert (Path(res["export"]["bundle"]) / "manifest.json").is_file()  # the first bundle is kept
    sm = json.loads((sb / "manifest.json").read_text())
    assert sm["parity"]["thresholds"]["top1"] == 0.99 and "--int8-top1 0.99" in strict["export"]["command"]
    assert (out / "state" / "parity-ddamfn-tiny-udc-top1-0.99.json").is_file()
    assert strict["bundle_accuracy"]["n"] == n_test and strict["bench"]["p50_ms"] > 0
