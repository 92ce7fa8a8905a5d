"""`emidbench report`: RUN/scores -> RUN/report/ (CSV, correlations, plots, terminal).

    tables.py        per-shift rows and the cross-model summary
    correlations.py  EMI vs judge, EMID vs its bound (scipy)
    plots.py         the figures
    terminal.py      the rich tables printed at the end
    page.py          RUN/report/index.html, the self-contained page (examples.py: its galleries)
"""

from emidbench.report.stage import open_page, run_report

__all__ = ["open_page", "run_report"]
