"""``fastface train`` options and entry point."""
import argparse
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from fastface.train import cli
from fastface.train.backbones import get_backbone


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_trains_verifies_and_writes_a_loadable_backbone(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fastface.train")
    for k in range(3):  # a tiny identity folder as verification set
        (tmp_path / "pairs" / f"id{k}").mkdir(parents=True)
        for j in range(4):
            cv2.imwrite(str(tmp_path / "pairs" / f"id{k}" / f"{j}.png"),
                        np.full((16, 16, 3), 60 * k + j, np.uint8))
    args = parse("synthetic:4:4", "--output", str(tmp_path), "--image-size", "16",
                 "--embedding-size", "16", "--batch-size", "8", "--max-steps", "3", "--workers", "0",
                 "--loss", "cosface", "--margins", "0.35", "--no-flip", "--no-progress",
                 "--verify", str(tmp_path / "pairs"), "--verify-every", "2")
    assert args.loss == "cosface" and args.flip is False and args.max_steps == 3
    assert cli.run(args) == 0
    assert [r.getMessage().split()[1] for r in caplog.records
            if "verification pairs" in r.getMessage()] == ["2", "3"]
    model = get_backbone("mobilefacenet", num_features=16, input_size=16)
    model.load_state_dict(torch.load(tmp_path / "backbone.pt", weights_only=True), strict=True)


def test_cli_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        cli.run(parse("synthetic:4:4", "--optimizer", "lamb"))
    with pytest.raises(SystemExit):
        parse("synthetic:4:4", "--batch-size", "many")


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, fastface.train.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=os.environ).returncode == 0
