"""Reports for support managers: the measures of docs/reports.md, computed by the database into
a daily rollup (`ReportDay`) and added up over a range.

- `report_build(start=, end=, channel=)`: the report of a range of local days.
- `report_days_refresh(days=)`: recompute and store days (on demand).
- `report_rollup_run()`: beat's run (today and the days that changed).
"""

from __future__ import annotations

from .compute import Windows, day_compute, local_date
from .report import Duration, InvalidReportRange, Report, report_build, report_from_days
from .rollup import RollupRun, report_days_load, report_days_refresh, report_rollup_run
from .tally import Tally

__all__ = [
    "Duration",
    "InvalidReportRange",
    "Report",
    "RollupRun",
    "Tally",
    "Windows",
    "day_compute",
    "local_date",
    "report_build",
    "report_days_load",
    "report_days_refresh",
    "report_from_days",
    "report_rollup_run",
]
