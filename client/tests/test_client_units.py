"""The client's pure parts: batching, keys, batch encoding, the failed file, the state file."""

import csv
import io
import json

from hypothesis import given
from hypothesis import strategies as st

from gateway_client import readers, state, transports
from gateway_client.batches import batch_key, batches
from gateway_client.failed import FailedFile, failed_path


def test_batches_keep_every_row_once_in_order():
    rows = [(i + 2, [str(i)]) for i in range(11)]
    got = list(batches(iter([rows]), 4))
    assert [b.number for b in got] == [0, 1, 2]
    assert [len(b.rows) for b in got] == [4, 4, 3]
    assert [r for b in got for r in b.rows] == rows
    assert list(batches(iter([]), 4)) == [] and list(batches(iter([[], []]), 4)) == []


@given(st.lists(st.integers(0, 9), max_size=12), st.integers(1, 7))
def test_the_batches_of_a_file_do_not_depend_on_how_its_rows_come_in_blocks(sizes, size):
    """Keys are per batch number: the same rows must make the same batches whatever the reads were."""
    rows = [(n, str(n)) for n in range(sum(sizes))]
    blocks, at = [], 0
    for length in sizes:
        blocks.append(rows[at : at + length])
        at += length
    got = [(b.number, b.rows) for b in batches(iter(blocks), size)]
    assert got == [(n, rows[i : i + size]) for n, i in enumerate(range(0, len(rows), size))]


def test_keys_depend_on_everything_that_changes_the_batch_and_nothing_else():
    key = batch_key("h", "t", "insert", 5000, 3, 0)
    assert key == batch_key("h", "t", "insert", 5000, 3, 0) and key.startswith("gwc-") and len(key) < 255
    others = {batch_key(*args) for args in [("h2", "t", "insert", 5000, 3, 0), ("h", "u", "insert", 5000, 3, 0),
              ("h", "t", "upsert", 5000, 3, 0), ("h", "t", "insert", 1000, 3, 0), ("h", "t", "insert", 5000, 4, 0),
              ("h", "t", "insert", 5000, 3, 1)]}
    assert key not in others and len(others) == 6


def test_csv_batches_say_where_each_row_starts(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfid,note\r\n1,"two\r\nlines ""quoted"""\r\n2,plain\r\n\r\n3,x')
    rows = readers.read(path)
    assert rows.header == ["id", "note"]
    read = list(rows.rows)
    assert [line for line, _ in read] == [2, 4, 6]  # the blank line 5 is skipped, as the gateway does
    extension, body = readers.encode_batch(rows, read)
    assert extension == "csv" and readers.positions(rows, read) == [2, 4, 5]
    # The file's own bytes, under its header.
    assert body == b'id,note\r\n1,"two\r\nlines ""quoted"""\r\n2,plain\r\n3,x\n'
    assert list(csv.reader(io.StringIO(body.decode(), newline=""))) == [
        ["id", "note"],
        ["1", 'two\r\nlines "quoted"'],
        ["2", "plain"],
        ["3", "x"],
    ]


def test_jsonl_and_bad_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('\n{"id": 1, "n": "a"}\n{bad\n{"id": 2}\n')
    rows = readers.read(path)
    assert rows.header == ["id", "n"]
    read = list(rows.rows)
    assert [line for line, _ in read] == [2, 3, 4]
    _, body = readers.encode_batch(rows, read)
    assert readers.positions(rows, read) == [1, 2, 3] and body.splitlines()[1] == b"not json"


def test_the_failed_file_keeps_the_input_format_and_is_only_made_when_needed(tmp_path):
    path = tmp_path / "people.tsv"
    assert failed_path(path, "tsv").name == "people.failed.tsv"
    assert failed_path(tmp_path / "book.xlsx", "xlsx").name == "book.failed.csv"
    quiet = FailedFile(failed_path(path, "tsv"), "tsv", ["id", "name"], append=False)
    quiet.close()
    assert not failed_path(path, "tsv").exists()
    failed = FailedFile(failed_path(path, "tsv"), "tsv", ["id", "name"], append=False)
    failed.write(7, b"x\tAnn\n", "id: expected an integer")
    failed.close()
    again = FailedFile(failed_path(path, "tsv"), "tsv", ["id", "name"], append=True)
    again.write(9, b"y\tBob\r\n", "id: expected an integer")
    again.close()
    lines = list(csv.reader(failed_path(path, "tsv").open(), delimiter="\t"))
    assert lines == [
        ["id", "name", "_line", "_reason"],
        ["x", "Ann", "7", "id: expected an integer"],
        ["y", "Bob", "9", "id: expected an integer"],
    ]
    jsonl = FailedFile(tmp_path / "f.jsonl", "jsonl", ["id"], append=False)
    jsonl.write(3, {"id": "x"}, "bad")
    jsonl.close()
    assert json.loads((tmp_path / "f.jsonl").read_text()) == {"id": "x", "_line": 3, "_reason": "bad"}


def test_the_state_file_is_replaced_whole(tmp_path):
    path = state.state_path(tmp_path / "t.csv")
    assert state.load(path) is None
    saved = state.State("h", "t", "insert", 10)
    for number in (0, 2, 1, 5):
        saved.confirm(number)
    assert (saved.done_below, saved.done, saved.batches_done) == (3, [5], 4)
    assert [n for n in range(7) if saved.confirmed(n)] == [0, 1, 2, 5]
    state.save(saved, path)
    assert state.load(path) == saved and saved.matches(state.State("h", "t", "insert", 10))
    assert not saved.matches(state.State("h", "t", "insert", 11))
    path.write_text("{not json")
    assert state.load(path) is None


def test_csv_records_across_chunks_match_the_csv_module(tmp_path, monkeypatch):
    """Records cut from fixed-size chunks (tiny here, so quotes, CRLFs and blank lines straddle every
    boundary) are the csv module's records of the whole file, each with the line it starts on."""
    import random

    rng = random.Random(7)
    rows = [["id", "note"]]
    for i in range(400):
        note = rng.choice(["plain", 'a "quoted" word', "two\nlines", "three\r\nline\nend", "", 'x,"y",z', "tail "])
        rows.append([str(i), note])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    text = buffer.getvalue().replace("\r\n5,", "\r\n\r\n5,", 1)  # a blank line between records
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    monkeypatch.setattr(readers, "CHUNK", 37)
    read = list(readers.read(path).rows)
    expected, reader = [], csv.reader(io.StringIO(text, newline=""))
    next(reader)
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        if fields:
            expected.append((line, fields))
    got = [(line, next(csv.reader(io.StringIO(record.decode(), newline="")))) for line, record in read]
    assert got == expected and len(got) == 400


def test_csv_rows_become_json_objects_a_batch_at_a_time_and_rows_that_cannot_are_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'id,note\n1,"two\nlines"\n2,\\N\n3,ab"c\n4,x"y\n5,1,2\n6,ok\n')
    rows = readers.read(path)
    read = list(rows.rows)
    objects, unsendable = transports.json_rows(rows, read)
    assert objects == [] and set(unsendable) == {
        2,
        3,
    }  # indexes in the batch: sent without them, they go to the failed file
    assert unsendable[3] == "expected 2 fields, got 3" and unsendable[2].startswith("not a CSV record")
    good = [read[i] for i in (0, 1, 4)]
    assert transports.json_rows(rows, good) == (
        [{"id": "1", "note": "two\nlines"}, {"id": "2", "note": None}, {"id": "6", "note": "ok"}],
        {},
    )


def test_csv_nulls_over_the_stream_follow_the_import_s_convention(tmp_path):
    """Standard: an unquoted empty cell or \\N is null, quoted it is text; with a marker, only it."""
    path = tmp_path / "t.csv"
    path.write_bytes(b'id,a,b\n1,,""\n2,"\\N",\\N\n3,"x,y",\n4,NA,""\n')
    rows = readers.read(path)
    read = list(rows.rows)
    assert transports.json_rows(rows, read)[0] == [
        {"id": "1", "a": None, "b": ""},
        {"id": "2", "a": "\\N", "b": None},
        {"id": "3", "a": "x,y", "b": None},
        {"id": "4", "a": "NA", "b": ""},
    ]
    assert transports.json_rows(rows, read, "NA")[0] == [
        {"id": "1", "a": "", "b": ""},
        {"id": "2", "a": "\\N", "b": "\\N"},
        {"id": "3", "a": "x,y", "b": ""},
        {"id": "4", "a": None, "b": ""},
    ]
