"""BagIt export (RFC 8493): round trips as a folder and a zip; tampering, missing and extra files are found;
unsafe payload paths are refused before anything is written."""

from __future__ import annotations

import hashlib
import zipfile
from datetime import date
from pathlib import Path

import pytest

from storage import AUDIT_DIR, BagError, BagFile, verify_bag, write_bag

INFO = {
    "Source-Organization": "Bộ Tài chính",
    "External-Description": "Báo cáo ngân sách quý III/2026\ncủa 63 tỉnh, thành phố",
    "External-Identifier": "export-2026-10-05-001",
}
PAYLOAD = [
    BagFile("envelopes/000.01.00.H41,2026-10-05,123-BC-STC.edxml", b"<edXML>...</edXML>"),
    BagFile("reports/ngân sách quý III.json", b'{"indication": "TOTAL_PASSED"}'),
    BagFile(f"{AUDIT_DIR}/checkpoint.txt", b"example.gov.vn/log\n42\nAAAA\n"),
    BagFile("odd name %41\nwith newline", b"x"),
    BagFile("empty", b""),
]


@pytest.fixture(params=["folder", "zip"])
def bag(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    name = "export" if request.param == "folder" else "export.zip"
    return write_bag(tmp_path / name, PAYLOAD, info=INFO, bagging_date=date(2026, 10, 5))


def _files(bag: Path) -> dict[str, bytes]:
    if bag.suffix == ".zip":
        with zipfile.ZipFile(bag) as archive:
            return {n.split("/", 1)[1]: archive.read(n) for n in archive.namelist()}
    return {p.relative_to(bag).as_posix(): p.read_bytes() for p in bag.rglob("*") if p.is_file()}


def test_round_trip(bag: Path) -> None:
    assert verify_bag(bag) == []
    files = _files(bag)
    assert files["bagit.txt"] == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    for item in PAYLOAD:
        assert files[f"data/{item.path}"] == item.data
    info = files["bag-info.txt"].decode()
    assert "Bagging-Date: 2026-10-05\n" in info
    assert f"Payload-Oxum: {sum(len(f.data) for f in PAYLOAD)}.{len(PAYLOAD)}\n" in info
    assert "Source-Organization: Bộ Tài chính\n" in info
    assert "External-Description: Báo cáo ngân sách quý III/2026\n  của 63 tỉnh, thành phố\n" in info
    manifest = files["manifest-sha256.txt"].decode()
    assert f"{hashlib.sha256(b'x').hexdigest()}  data/odd name %2541%0Awith newline\n" in manifest
    assert len(manifest.splitlines()) == len(PAYLOAD)
    tagmanifest = files["tagmanifest-sha256.txt"].decode()
    assert {line.split("  ")[1] for line in tagmanifest.splitlines()} == {
        "bagit.txt",
        "bag-info.txt",
        "manifest-sha256.txt",
    }


def test_zip_holds_one_top_level_folder_named_like_the_file(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "transfer-42.zip", PAYLOAD, info=INFO)
    with zipfile.ZipFile(bag) as archive:
        assert {n.split("/", 1)[0] for n in archive.namelist()} == {"transfer-42"}


def test_tampered_missing_and_extra_files_are_reported(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", PAYLOAD, info=INFO)
    (bag / "data" / PAYLOAD[0].path).write_bytes(b"<edXML>forged</edXML>")
    (bag / "data" / "reports" / "ngân sách quý III.json").unlink()
    (bag / "data" / "smuggled.pdf").write_bytes(b"%PDF")
    problems = verify_bag(bag)
    assert any(PAYLOAD[0].path in p and "sha256 differs" in p for p in problems), problems
    assert any("ngân sách quý III.json: listed in manifest-sha256.txt but missing" in p for p in problems), problems
    assert any("data/smuggled.pdf: in the payload but not in manifest-sha256.txt" in p for p in problems), problems
    assert any("Payload-Oxum" in p for p in problems), problems


def test_edited_tag_file_is_reported(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", PAYLOAD, info=INFO)
    info = bag / "bag-info.txt"
    info.write_text(info.read_text().replace("Bộ Tài chính", "Bộ Khác"))
    assert verify_bag(bag) == ["bag-info.txt: sha256 differs from tagmanifest-sha256.txt (changed or damaged)"]


def test_tampered_zip_is_reported(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag.zip", PAYLOAD[:1], info=INFO)
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(bag) as source, zipfile.ZipFile(forged, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, b"<edXML>forged</edXML>" if name.endswith(".edxml") else data)
    assert any("sha256 differs" in p for p in verify_bag(forged))


def test_not_a_bag(tmp_path: Path) -> None:
    assert verify_bag(tmp_path / "nothing") == [f"{tmp_path / 'nothing'}: neither a bag directory nor a zip file"]
    (tmp_path / "folder").mkdir()
    assert verify_bag(tmp_path / "folder") == ["bagit.txt is missing: not a bag"]


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["../escape.txt"], "'..' segment"),
        (["a/../../b"], "'..' segment"),
        (["/etc/passwd"], "absolute"),
        (["C:/Windows/x"], "absolute"),
        (["a\\b"], "backslash"),
        (["a\x00b"], "NUL"),
        (["a//b"], "empty"),
        (["./a"], "'.'"),
        ([""], "non-empty"),
        (["a\tb"], "control character"),
        (["report.pdf", "report.pdf"], "name the same file"),
        (["Report.PDF", "report.pdf"], "name the same file"),
        (["e\u0301.txt", "\u00e9.txt"], "name the same file"),  # one NFC name
        (["a", "a/b"], "needs it as a folder"),
    ],
)
def test_unsafe_paths_are_refused_before_writing(tmp_path: Path, paths: list[str], message: str) -> None:
    with pytest.raises(BagError, match=message):
        write_bag(tmp_path / "bag", [BagFile(p, b"x") for p in paths], info={})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({"Payload-Oxum": "1.1"}, "computed by write_bag"),
        ({"Bad:Label": "x"}, "without ':'"),
        ({" Label": "x"}, "edge blanks"),
    ],
)
def test_bad_bag_info_is_refused(tmp_path: Path, info: dict[str, str], message: str) -> None:
    with pytest.raises(BagError, match=message):
        write_bag(tmp_path / "bag", PAYLOAD, info=info)


def test_existing_target_is_never_replaced(tmp_path: Path) -> None:
    for name in ("bag", "bag.zip"):
        write_bag(tmp_path / name, PAYLOAD, info=INFO)
        with pytest.raises(BagError, match="already exists"):
            write_bag(tmp_path / name, PAYLOAD[:1], info=INFO)
        assert verify_bag(tmp_path / name) == []
