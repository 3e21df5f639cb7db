#!/usr/bin/env python3
"""Keeps one table per processor in docs/benchmarks.md.

Each run of bench/run.sh writes its headline figures as a section
(bench/results/latest.section.md: a heading `### PROCESSOR MODEL, DATE`, a
line on the machine and a table whose last column names the run of each
row). This puts that section into the doc's "Results by processor": merged
into the table of the same processor model (its rows replace the rows of
the same figure, the other rows stay, the heading takes the new date), or
as a new table. Tables of other processors are kept, so the doc shows every
processor seen, each with the date of its latest run.

    python3 bench/record.py [SECTION_FILE [DOC]]
    (defaults: bench/results/latest.section.md docs/benchmarks.md)
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
HEADING = "## Results by processor"
END = "<!-- /processor -->"


def begin_marker(model):
    return f"<!-- processor: {model} -->"


def section_model(section):
    """The processor model of a section: its `### MODEL, DATE` heading up to
    the last comma."""
    first = section.lstrip().splitlines()[0] if section.strip() else ""
    if not first.startswith("### ") or "," not in first:
        raise ValueError(f"not a processor section heading: {first!r}")
    return first[4:].rsplit(",", 1)[0].strip()


def table_rows(section):
    """The rows of a section's table as (figure, line), in order: the lines
    after the table's `|---` separator line."""
    rows, in_table = [], False
    for line in section.splitlines():
        if line.startswith("|---"):
            in_table = True
            continue
        if in_table and line.startswith("| "):
            rows.append((line.split("|")[1].strip(), line))
        elif in_table and line.strip():
            break
    return rows


def merge_sections(old, new):
    """new's heading, text and table header with old's rows, each replaced
    by new's row of the same figure, and new's other rows after them."""
    fresh = dict(table_rows(new))
    merged = [fresh.pop(label, line) for label, line in table_rows(old)]
    merged += [line for label, line in table_rows(new) if label in fresh]
    lines = new.strip().splitlines()
    sep = next(i for i, line in enumerate(lines) if line.startswith("|---"))
    return "\n".join(lines[:sep + 1] + merged)


def update_doc(doc, section):
    """The text of doc with section merged into its processor's table, or
    appended at the end of the "Results by processor" part (created before
    the first `## ` heading after the title when missing). A pure function
    of its arguments."""
    model = section_model(section)
    begin = begin_marker(model)
    if begin in doc:
        start = doc.index(begin)
        end = doc.index(END, start) + len(END)
        old = doc[start + len(begin):doc.index(END, start)]
        if doc[end:end + 1] == "\n":
            end += 1
        block = f"{begin}\n{merge_sections(old, section)}\n{END}\n"
        return doc[:start] + block + doc[end:]
    block = f"{begin}\n{section.strip()}\n{END}\n"
    if HEADING not in doc:
        lines = doc.split("\n")
        at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        intro = [HEADING, "", "The headline figures of the latest run on each processor seen "
                 "(`python3 bench/record.py` after `bench/run.sh`).", ""]
        doc = "\n".join(lines[:at] + intro + lines[at:])
    start = doc.index(HEADING) + len(HEADING)
    nxt = doc.find("\n## ", start)
    cut = len(doc) if nxt < 0 else nxt + 1
    head, tail = doc[:cut].rstrip("\n"), doc[cut:]
    return head + "\n\n" + block + ("\n" + tail if tail else "")


def main(argv):
    section_path = argv[1] if len(argv) > 1 else os.path.join(HERE, "results", "latest.section.md")
    doc_path = argv[2] if len(argv) > 2 else os.path.join(os.path.dirname(HERE), "docs", "benchmarks.md")
    with open(section_path) as f:
        section = f.read()
    with open(doc_path) as f:
        doc = f.read()
    with open(doc_path, "w") as f:
        f.write(update_doc(doc, section))
    print(f"{doc_path}: table for {section_model(section)} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
