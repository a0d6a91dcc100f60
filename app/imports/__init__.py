"""The import engine and its record sources.

    sources                      engine                                   database
    csv_source   ─┐
    spreadsheet  ─┼─> Source ──> plan (header vs catalog) ──> batches ──> writer (LOAD DATA / INSERT /
    json_source  ─┘   (header,   convert by column type      (rules,      isolate bad rows)
                       blocks of  per-table rules (JSON        duplicate
                       records)   Schema)                      probe)     report: every record
                                                                          accounted for by position

A source turns an upload into a header and blocks of records, each with its position (a CSV or JSON
Lines line, a sheet row, an array index). Everything after that is the same for every format.
"""
