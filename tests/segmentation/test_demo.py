"""``segloss demo`` (``make demo``) end to end at a tiny size."""

import json
import re

import pytest

from segloss.segmentation import demo

from ..helpers import TINY_ENCODER


@pytest.mark.usefixtures("one_thread")
def test_demo_trains_evaluates_and_compares(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("SEGLOSS_CACHE", str(tmp_path / "cache"))
    tiny = [f"model.encoder={TINY_ENCODER}", "data.size=64", "data.num_train=8", "data.num_eval=3",
            "train.crop_size=64", "train.epochs=1", "train.progress=false"]  # fmt: skip
    assert demo.main(["--config", "demo", "--out-dir", str(tmp_path / "demo"), *tiny]) == 0
    output = capsys.readouterr().out
    ce = json.loads((tmp_path / "demo" / "ce" / "results.json").read_text())
    hem = json.loads((tmp_path / "demo" / "hemplus" / "results.json").read_text())
    assert "ce on synthetic val" in output and "hem+ on synthetic val" in output
    assert len(re.findall(r"^mIoU ", output, flags=re.MULTILINE)) == 2  # the last row of each table
    line = re.search(
        r"HEM\+ vs CE on synthetic val: mIoU ([\d.]+) % vs ([\d.]+) % \(([-+][\d.]+) points\)", output
    )
    assert line is not None
    assert float(line[1]) == pytest.approx(100 * hem["miou"], abs=0.006)
    assert float(line[2]) == pytest.approx(100 * ce["miou"], abs=0.006)
    assert "predicting the most common class everywhere scores" in output
    # A second call reuses the finished runs and prints the same comparison.
    checkpoint = tmp_path / "demo" / "ce" / "checkpoint.pt"
    written = checkpoint.stat().st_mtime_ns
    assert demo.main(["--config", "demo", "--out-dir", str(tmp_path / "demo"), *tiny]) == 0
    assert checkpoint.stat().st_mtime_ns == written
    assert capsys.readouterr().out == output
    # An override the finished runs cannot take is one clear error, not a traceback.
    changed = [*tiny, "data.seed=5"]
    assert demo.main(["--config", "demo", "--out-dir", str(tmp_path / "demo"),
                      *changed]) == 1  # fmt: skip
    assert "data.seed" in caplog.text and "to start the demo afresh" in caplog.text
