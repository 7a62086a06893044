import pytest
import torch

from udc.sdk.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_checkpoint_round_trip(model, batch, tmp_path):
    path = save_checkpoint(model, tmp_path / "ckpt" / "model.pt", extra={"epoch": 3})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left behind
    loaded = load_checkpoint(path).eval()
    assert loaded.cfg == model.cfg and loaded.label_encoder == model.label_encoder
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2)
    with torch.no_grad():
        args = (batch["image"], batch["landmarks"], batch["noise"])
        assert torch.equal(model(*args), loaded(*args))


def test_bad_checkpoints_give_clear_errors(model, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a udc LRDif checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    path = save_checkpoint(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].pop("fpen_s2.net.0.weight")
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="fpen_s2.net.0.weight"):
        load_checkpoint(tmp_path / "broken.pt")
