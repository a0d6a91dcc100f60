import csv
import io

import pytest

from app.core.errors import InvalidCsv, UnsupportedMediaType
from app.imports.csv_source import RecordError, RecordReader, _last_record_end

ROWS = [
    ["id", "name", "note"],
    ["1", "plain", ""],
    ["2", "comma, inside", 'say "hi"'],
    ["3", "two\nlines", "and\r\nCRLF"],
    ["4", "ünïcödé ✓", '"'],
]


def encoded() -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(ROWS)
    return out.getvalue().encode()


def read_all(data: bytes, chunk: int) -> list:
    reader = RecordReader(max_record_bytes=10_000)
    records = []
    for i in range(0, len(data), chunk):
        records += reader.feed(data[i : i + chunk]).records
    return records + reader.finish().records


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 100_000])
def test_any_chunking_gives_the_same_records_and_line_numbers(chunk):
    records = read_all(encoded(), chunk)
    assert [fields for _, fields in records] == ROWS
    assert [line for line, _ in records] == [1, 2, 3, 4, 7]  # record 4 spans lines 4-6


def test_bom_is_dropped_and_blank_lines_skipped():
    records = read_all(b"\xef\xbb\xbfa,b\r\n\r\n1,2\r\n", 3)
    assert records == [(1, ["a", "b"]), (3, ["1", "2"])]


def test_last_record_without_newline():
    assert read_all(b"a\n1", 1) == [(1, ["a"]), (2, ["1"])]


def test_record_end_respects_quotes():
    assert _last_record_end('a,"x\ny"\nb,"open\n') == 8
    assert _last_record_end('"still\nopen') == 0


def test_not_utf8_and_binary_are_415():
    with pytest.raises(UnsupportedMediaType):
        read_all(b"a,b\n\xff\xfe\x00\x01", 100)
    with pytest.raises(UnsupportedMediaType):
        read_all(b"a,b\n1,\x00\n", 100)


def test_unterminated_quote_is_bounded():
    reader = RecordReader(max_record_bytes=100)
    reader.feed(b"a\n")
    with pytest.raises(InvalidCsv):
        reader.feed(b'"' + b"x" * 200)


def test_unterminated_quote_at_the_end_refuses_the_file_naming_the_line():
    # Every line after the open quote would be one field: reporting one bad row would hide them.
    with pytest.raises(InvalidCsv) as caught:
        read_all(b'a\n1\n"open\n3\n4\n', 100)
    assert caught.value.details == {"line": 3}


def test_blocks_carry_their_text_and_cleanliness():
    reader = RecordReader(max_record_bytes=1000)
    block = reader.feed(b'a,b\r\n1,"x\ny"\r\n2,')
    assert block.text == 'a,b\r\n1,"x\ny"\r\n' and block.clean
    assert [line for line, _ in block.records] == [1, 2]
    assert not reader.feed(b"z\n\n3,4\n").clean  # a blank line
    assert not reader.feed(b'5,"a"b\n').clean  # malformed


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

cells = st.one_of(st.text(alphabet='ab,"\r\n\t ', max_size=6), st.sampled_from(["", '""', '"a""b"', "x\r\ny"]))


@settings(max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=8),
       raw=st.text(alphabet='ab,"\r\n', max_size=40), crlf=st.booleans(), cut=st.integers(1, 50))
def test_the_fast_line_split_reads_what_csv_reader_reads(rows, raw, crlf, cut):
    """Written by csv.writer, or raw text with stray quotes and CRs: records, positions and errors
    are exactly csv.reader's, however the text is chunked."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    for text in (out.getvalue(), raw + "\n"):
        if text.count('"') % 2:
            continue  # refused as a whole at the end (tested above)
        expected, lines = [], csv.reader(io.StringIO(text, newline=""), strict=True)
        while True:
            start = lines.line_num + 1
            try:
                fields = next(lines)
            except StopIteration:
                break
            except csv.Error:
                expected.append((start, "error"))
                continue
            if fields:
                expected.append((start, fields))
        reader = RecordReader(1 << 20)
        data = text.encode()
        got = []
        for i in range(0, len(data), cut):
            got += reader.feed(data[i : i + cut]).records
        got += reader.finish().records
        assert [(r.line, "error") if isinstance(r, RecordError) else r for r in got] == expected


def read_marked(data: bytes, chunk: int) -> list:
    reader = RecordReader(max_record_bytes=10_000, marks=True)
    records = []
    for i in range(0, len(data), chunk):
        records += reader.feed(data[i : i + chunk]).records
    return [fields for _, fields in records + reader.finish().records]


@pytest.mark.parametrize("chunk", [1, 5, 100_000])
@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])  # a bare CR takes csv.reader's own path
def test_the_standard_convention_marks_quoted_cells_that_read_like_null(chunk, newline):
    """Unquoted, an empty cell and \\N are NULL; quoted, they are text: the reader marks those."""
    text = newline.join(['a,b,c', ',"",\\N', '"\\N","x""",""', '"two', 'lines","",', '"""",\\n,"\\N "', ""])
    assert read_marked(text.encode(), chunk) == [
        ["a", "b", "c"],
        ["", "\x00", "\\N"],
        ["\x00\\N", 'x"', "\x00"],
        [f"two{newline}lines" if newline != "\r" else "two\rlines", "\x00", ""],
        ['"', "\\n", "\\N "],
    ]


def test_a_blank_line_is_a_null_record_only_in_a_one_column_file_in_the_standard_convention():
    assert read_marked(b"v\r\nx\r\n\r\n\"\"\r\n", 2) == [["v"], ["x"], [""], ["\x00"]]
    assert read_marked(b"v,w\r\n1,2\r\n\r\n3,4\r\n", 2) == [["v", "w"], ["1", "2"], ["3", "4"]]
    assert [f for _, f in read_all(b"v\r\nx\r\n\r\ny\r\n", 2)] == [["v"], ["x"], ["y"]]  # a marker given: skipped


def test_with_a_marker_given_nothing_is_marked():
    assert [f for _, f in read_all(b'a,b\r\n"","\\N"\r\n', 3)] == [["a", "b"], ["", "\\N"]]
