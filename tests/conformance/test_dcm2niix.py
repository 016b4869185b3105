"""Every reference conversion of the dev corpus agrees with medipy, or differs for a documented reason.

Run with ``-s`` to see each case's rows; ``python tests/conformance/harness.py`` prints the whole table.
"""

from __future__ import annotations


def test_case_agrees_with_its_references(testdata, harness, expected_headings, conformance_case):
    rows = harness.run_case(conformance_case, testdata)
    print("\n" + harness.table(rows))
    for row in rows:
        reason = harness.expected_reason(row)
        if reason is None:
            assert row.verdict == "agree", row
        else:
            assert reason in expected_headings, f"{reason!r} is not a heading of EXPECTED_DIFFERENCES.md"
            assert row.verdict != "agree", f"{row.case} / {row.reference} agrees now: remove it from EXPECTED"


def test_every_expected_difference_names_a_case(harness, expected_headings):
    cases = {(case.id, reference.rsplit("/", 1)[-1]) for case in harness.references.CASES
             for reference in case.references}
    assert set(harness.references.EXPECTED) <= cases
    assert set(harness.references.EXPECTED.values()) == expected_headings
