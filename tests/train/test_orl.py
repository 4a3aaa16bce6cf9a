"""Real faces: mobilefacenet trained on 30 ORL identities verifies the 10 unseen ones clearly
better than the same network untrained."""
import torch

from fastface.train import TrainConfig, train
from fastface.train.backbones import get_backbone
from fastface.train.verification import folder_pairs
from shared_data import ORL, require

SIZE = 32  # 92x112 grey faces resized to 32x32: a few CPU minutes' worth of signal


@require(ORL)
def test_training_on_orl_beats_the_untrained_network(tmp_path):
    for split, ids in (("train", range(1, 31)), ("heldout", range(31, 41))):
        (tmp_path / split).mkdir()
        for i in ids:  # split by identity without copying the images
            (tmp_path / split / f"s{i}").symlink_to(ORL / f"s{i}", target_is_directory=True)
    heldout = folder_pairs(tmp_path / "heldout", SIZE)  # 450 same + 450 different pairs

    cfg = TrainConfig(data=str(tmp_path / "train"), output=str(tmp_path / "run"),
                      backbone="mobilefacenet", embedding_size=128, image_size=SIZE,
                      batch_size=16, epochs=20, lr=0.05, warmup_steps=5, scale=32.0,
                      margins="0.3", workers=0, save_every=10_000, progress=False)
    torch.manual_seed(cfg.seed)  # the initialisation train() starts from
    untrained = heldout(get_backbone("mobilefacenet", num_features=128, input_size=SIZE))["heldout"]
    trained = heldout(train(cfg).backbone)["heldout"]
    print(f"ORL held-out verification: untrained {untrained:.3f}, trained {trained:.3f}")
    # Measured: untrained 0.807, trained 0.902 (other seeds: trained 0.88-0.89).
    assert trained >= untrained + 0.05 and trained >= 0.85, (untrained, trained)
