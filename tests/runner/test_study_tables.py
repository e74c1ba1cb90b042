"""The study tables in README.md and docs/ are what ``segloss report`` prints for the committed runs
(``studies/update_docs.py --check``)."""

import importlib.util

from ..helpers import REPO


def load_update_docs():
    spec = importlib.util.spec_from_file_location("_update_docs", REPO / "studies" / "update_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_study_tables_in_readme_and_docs_are_what_the_report_prints():
    update_docs = load_update_docs()
    markers = sum(
        len(update_docs.MARKER.findall(document.read_text()))
        for pattern in update_docs.DOCUMENTS
        for document in REPO.glob(pattern)
    )
    assert markers >= 7
    assert update_docs.update(check=True) == [], "run python studies/update_docs.py"


def test_a_stale_table_is_found(tmp_path, monkeypatch):
    update_docs = load_update_docs()
    document = tmp_path / "README.md"
    document.write_text(
        "<!-- segloss report studies/camvid/ce-recipe (table 1) -->\n| stale |\n<!-- /segloss report -->\n"
    )
    monkeypatch.setattr(update_docs, "DOCUMENTS", (str(document.relative_to(tmp_path)),))
    monkeypatch.setattr(update_docs, "REPO", tmp_path)
    monkeypatch.setattr(update_docs, "PLOTS", {"docs/images/ce.png": "studies/camvid/ce-recipe"})
    monkeypatch.setattr(update_docs, "CURVES", {"docs/images/curves.png": "studies/camvid/ce-recipe"})
    (tmp_path / "docs" / "images").mkdir(parents=True)
    (tmp_path / "studies" / "camvid").mkdir(parents=True)
    (tmp_path / "studies" / "camvid" / "ce-recipe").symlink_to(REPO / "studies" / "camvid" / "ce-recipe")
    assert update_docs.main(["--check"]) == 1
    assert update_docs.update() == ["README.md"]
    text = document.read_text()
    assert "| stale |" not in text and "| lr | weight_decay | schedule | n | mIoU % (mean ± sd) |" in text
    assert update_docs.update(check=True) == []
    assert (tmp_path / "docs" / "images" / "ce.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "docs" / "images" / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_an_empty_table_is_filled_without_swallowing_the_next_one():
    update_docs = load_update_docs()
    text = (
        "<!-- segloss report a -->\n<!-- /segloss report -->\nprose\n"
        "<!-- segloss report b (table 2) -->\n| old |\n<!-- /segloss report -->\n"
    )
    found = [(m["command"], m["table"], m["body"]) for m in update_docs.MARKER.finditer(text)]
    assert found == [("a", None, None), ("b", "2", "| old |\n")]
    filled = update_docs.MARKER.sub(lambda m: m.group(1) + f"| {m['command']} |\n" + m.group(5), text)
    assert filled == text.replace("-->\n<!-- /", "-->\n| a |\n<!-- /", 1).replace("| old |", "| b |")
