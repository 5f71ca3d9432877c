"""Issue 9, "Access decisions that cannot be bypassed", proven with real parts.

Path spellings (``test_paths``), failing closed on deleted groups, permissions and
invalid rows (``test_fail_closed``), bounded staleness across processes
(``test_staleness``), dependencies going down and coming back (``test_dependencies``)
and Daphne + wsreject facing malformed client input (``test_daphne_input``).
"""
