"""Parsing each format into structured blocks, access metadata, and refusing bad documents."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from retriever.chunking import chunk_blocks
from retriever.documents import Block, DocumentError, discover, load_bytes, load_file

pytestmark = pytest.mark.unit

META = {
    "tenant": "acme",
    "allowed_roles": ["support"],
    "min_level": "L1",
    "classification": "internal",
}


def pdf(pages: list[str], *, password: str | None = None) -> bytes:
    """A real PDF with one line of text per page, built with pypdf."""
    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(width=612, height=792)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
        )
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_markdown_blocks_follow_headings_and_keep_structure() -> None:
    text = """---
doc_id: returns
title: Returns
tenant: acme
allowed_roles: [customer, Support]
min_level: none
classification: public
updated_at: 2026-01-02
---
# Returns policy

Intro paragraph.

## Windows

- 30 days standard
- 60 days for members

| item | days |
|---|---|
| tent | 30 |

### Exceptions *(read me)*

Fuel canisters cannot be returned.
"""
    doc = load_bytes(
        text.encode(), name="returns.md", source_uri="test://r", metadata={}, max_bytes=10_000
    )
    assert doc.meta.doc_id == "returns"
    assert doc.meta.allowed_roles == ("customer", "support")
    assert doc.meta.updated_at is not None and doc.meta.updated_at.tzinfo is not None
    assert [(b.section_path, b.kind) for b in doc.blocks] == [
        (("Returns policy",), "paragraph"),
        (("Returns policy", "Windows"), "list"),
        (("Returns policy", "Windows"), "table"),
        (("Returns policy", "Windows", "Exceptions (read me)"), "paragraph"),
    ]
    assert doc.blocks[1].text == "- 30 days standard\n- 60 days for members"


def test_html_drops_chrome_and_follows_headings() -> None:
    html = """<html><head><title>Stove FAQ</title><script>var x = 1;</script></head><body>
    <nav>Home | Shop</nav><h1>Stove FAQ</h1><p>Intro.</p>
    <div><h2>Cleaning</h2><ul><li>Cool it</li><li>Brush the burner</li></ul>
    <table><tr><th>Part</th><th>Interval</th></tr><tr><td>Jet</td><td>Monthly</td></tr></table></div>
    <footer>(c) Acme</footer></body></html>"""
    doc = load_bytes(
        html.encode(), name="stove.html", source_uri="test://s", metadata=META, max_bytes=10_000
    )
    assert doc.meta.title == "Stove FAQ"
    assert doc.meta.doc_id == "stove"
    texts = [(b.section_path, b.text) for b in doc.blocks]
    assert texts == [
        (("Stove FAQ",), "Intro."),
        (("Stove FAQ", "Cleaning"), "- Cool it\n- Brush the burner"),
        (("Stove FAQ", "Cleaning"), "Part | Interval\nJet | Monthly"),
    ]


def test_plain_text_paragraphs() -> None:
    doc = load_bytes(
        b"First para\nstill first.\n\n\nSecond.",
        name="n.txt",
        source_uri="t",
        metadata=META,
        max_bytes=100,
    )
    assert [b.text for b in doc.blocks] == ["First para\nstill first.", "Second."]


def test_pdf_pages_become_sections() -> None:
    doc = load_bytes(
        pdf(["Warranty covers seams.", "Claims need a receipt."]),
        name="w.pdf",
        source_uri="t",
        metadata=META,
        max_bytes=100_000,
    )
    assert [(b.section_path, b.text) for b in doc.blocks] == [
        (("Page 1",), "Warranty covers seams."),
        (("Page 2",), "Claims need a receipt."),
    ]


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (pdf(["secret"], password="pw"), "locked.pdf", "encrypted"),
        (b"%PDF-1.7\n garbage that is no pdf", "broken.pdf", "unreadable PDF"),
        (pdf([""]), "scan.pdf", "no text"),
        (b"---\ntenant: acme\n---\n   \n", "empty.md", "no text"),
        (b"\xff\xfe\x00bad", "latin.txt", "not UTF-8"),
        (b"hello", "sheet.xlsx", "unsupported format"),
        (b"---\ntenant: [unclosed\n---\nx", "bad.md", "invalid front matter"),
        (b"a" * 200, "big.txt", "exceeds the limit"),
    ],
)
def test_bad_documents_are_refused_with_the_file_named(
    data: bytes, name: str, message: str
) -> None:
    with pytest.raises(DocumentError, match=message) as caught:
        load_bytes(
            data,
            name=name,
            source_uri="t",
            metadata=META,
            max_bytes=150 if name == "big.txt" else 100_000,
        )
    assert str(caught.value).startswith(name)


def test_missing_metadata_is_named() -> None:
    with pytest.raises(DocumentError, match=r"n\.txt: invalid metadata: .*min_level: missing"):
        load_bytes(
            b"text",
            name="n.txt",
            source_uri="t",
            metadata={"tenant": "acme", "allowed_roles": ["x"], "classification": "public"},
            max_bytes=100,
        )


def test_files_take_sidecar_metadata_over_defaults(tmp_path: Path) -> None:
    (tmp_path / "guide.html").write_text("<h1>Guide</h1><p>Body.</p>")
    (tmp_path / "guide.html.meta.yaml").write_text("classification: confidential\nmin_level: L2\n")
    (tmp_path / "README.md").write_text("# not a document")
    (tmp_path / "notes.csv").write_text("a,b")
    found = list(discover(tmp_path))
    assert found == [tmp_path / "guide.html"]
    doc = load_file(found[0], defaults=META, max_bytes=10_000)
    assert (doc.meta.classification.value, doc.meta.min_level.value) == ("confidential", "L2")
    assert doc.meta.updated_at is not None, "the file's modification time by default"
    assert doc.source_uri.startswith("file://")


def test_version_changes_with_text_or_metadata_only() -> None:
    def version(text: bytes, **meta: str) -> str:
        return load_bytes(
            text, name="a.txt", source_uri="t", metadata={**META, **meta}, max_bytes=100
        ).version

    assert version(b"x") == version(b"x")
    assert version(b"x") != version(b"y")
    assert version(b"x") != version(b"x", classification="public")


def test_chunks_respect_sections_size_and_overlap() -> None:
    sentences = " ".join(f"Sentence number {i} says something." for i in range(40))
    blocks = [
        Block(("A",), "Short intro."),
        Block(("A", "B"), sentences),
        Block(("A", "B"), "- item one\n- item two"),
        Block(("C",), "x" * 450),
    ]
    chunks = chunk_blocks(blocks, max_chars=300, overlap_chars=80)
    assert all(len(c.text) <= 300 for c in chunks)
    assert chunks[0].section_path == ("A",) and chunks[0].text == "Short intro."
    b_chunks = [c for c in chunks if c.section_path == ("A", "B")]
    assert len(b_chunks) > 3
    for before, after in itertools.pairwise(b_chunks):
        last_sentence = before.text.rsplit(". ", 1)[-1]
        assert last_sentence in after.text, "consecutive chunks overlap"
    assert b_chunks[-1].text.endswith("- item one\n- item two")
    assert [c.position for c in chunks] == list(range(len(chunks)))
    hard_cut = "".join(c.text.replace("\n\n", "") for c in chunks if c.section_path == ("C",))
    assert hard_cut == "x" * 450, "a word longer than the limit is cut, nothing is lost"


def test_paragraph_chunking_keeps_long_paragraphs_alone_and_short_ones_with_the_next() -> None:
    long_a, long_b = "A" * 40 + " first topic." * 20, "B" * 40 + " second topic." * 20
    blocks = [
        Block((), "Lead-in:"),
        Block((), long_a),
        Block((), long_b),
        Block((), "Last note."),
    ]
    packed = chunk_blocks(blocks, max_chars=2000, overlap_chars=200)
    assert len(packed) == 1, "without the option, short paragraphs share one chunk"
    chunks = chunk_blocks(blocks, max_chars=2000, overlap_chars=200, paragraph_chars=150)
    assert [c.text for c in chunks] == [f"Lead-in:\n\n{long_a}", f"{long_b}\n\nLast note."]
    one_block = chunk_blocks([Block((), long_a)], max_chars=2000, paragraph_chars=150)
    assert [c.text for c in one_block] == [long_a], "a one-paragraph document is unchanged"
