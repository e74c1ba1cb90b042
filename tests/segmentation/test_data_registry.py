"""The dataset registry (each reader registers in its own module): the docs' one table of readers, the
download pages and the download check follow it."""

import importlib.util

from segloss.segmentation.data import DATASETS

from ..core.test_loss_docs import first_column_names
from ..helpers import REPO


def test_the_table_of_readers_is_the_registry():
    table = first_column_names(REPO / "docs" / "datasets.md", "| config `data.name` | reader")
    assert sorted(table) == sorted(DATASETS)
    rows = (REPO / "docs" / "datasets.md").read_text()
    for name, entry in DATASETS.items():
        assert f"| `{name}` | `{entry.reader.__name__}(" in rows, name
        assert (REPO / "datasets" / f"{name}.md").is_file(), f"datasets/{name}.md"  # how_to_get names it


def test_the_download_check_reads_the_readers_split_sizes():
    spec = importlib.util.spec_from_file_location("check_download", REPO / "datasets" / "check_download.py")
    check_download = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_download)
    published = {name for name, entry in DATASETS.items() if entry.reader.split_sizes}
    assert set(check_download.SPLIT_SIZES) == published == {"camvid", "cityscapes", "idd_lite", "sbd"}
    assert check_download.SPLIT_SIZES["idd_lite"] == {
        "train": 1281,
        "val": 122,
        "test": 204,
        "trainval": 1403,
    }
