"""The metric columns, named once: RUN/scores/<model>/metrics.csv (the score stage),
RUN/report/<model>/per_shift.csv (the report) and per_shift.csv of
`score --from-embeddings` are views of the same list."""

from __future__ import annotations

COUNTS = ["n", "n_missing", "n_failed"]
EMI = ["emi", "emi_lo", "emi_hi", "emid", "emid_lo", "emid_hi"]  # *_lo/*_hi: bootstrap 95% intervals
BOUND = ["emid_ub", "emid_true_ub", "jsd_v", "jsd_t", "jsd_y_id", "jsd_y_ood"]
JUDGE = ["rp_score", "rp_lo", "rp_hi", "rp_conv", "rp_detail", "rp_complex", "win_rate", "win_lo", "win_hi",
         "judge_n", "judge_failed"]

# choice scenarios (classification, multiple choice): empty for open-ended ones
CHOICE = ["accuracy", "accuracy_lo", "accuracy_hi", "macro_f1", "n_unparsed", "chance"]

# metrics.csv: every column, in this order; an empty cell is a value not computed
METRIC_COLUMNS = ["scenario", *COUNTS, *EMI, *BOUND, *JUDGE, *CHOICE]

# per_shift.csv: the scenario's shifts (from the manifest), then the headline metrics
SHIFT_COLUMNS = ["family", "modality", "visual_shift", "visual_severity", "text_shift", "text_severity"]
_NOT_PER_SHIFT = {"n_missing", "n_failed", "emid_true_ub", "rp_conv", "rp_detail", "rp_complex", "judge_n"}
PER_SHIFT_COLUMNS = ["scenario", *SHIFT_COLUMNS, *(c for c in METRIC_COLUMNS[1:]
                                                   if c not in _NOT_PER_SHIFT and c not in CHOICE)]
# appended to per_shift.csv when the run has choice scenarios (an open-ended run's table is unchanged)
CHOICE_PER_SHIFT = list(CHOICE)
# written only when computed (--entropy-scaler), after the column it follows
OPTIONAL_COLUMNS = {"emid_true_ub": "emid_ub"}

# score --from-embeddings: no answers to count, no judge; intervals appended with --bootstrap
EMBEDDING_COLUMNS = ["scenario", "n", "emi", "emid", *(c for c in BOUND if c != "emid_true_ub")]
EMBEDDING_CI_COLUMNS = [c for c in EMI if c.endswith(("_lo", "_hi"))]
