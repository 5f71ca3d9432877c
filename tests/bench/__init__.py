"""The bench harness: every peer on every scenario, in one run, with real load generators.

    ./dev bench [ARGS]               # = python -m tests.bench ARGS (installs wrk as root)
    python -m tests.bench --smoke    # a short run into a temporary directory (CI)
    python -m tests.bench --help

Peers are real servers on 127.0.0.1 pinned to one core (``taskset -c 0``): the raw ASGI
limit, the FastAPI reference, the same endpoints on plain Channels, the wsreject demo on
uvicorn, on Daphne+wsreject and on stock Daphne. Denials are loaded with ``wrk``, accepted
handshakes with a raw-socket client, both pinned to another core (``taskset -c 1``).
Results go to ``docs/bench/`` (``results.json``, ``results.md``, ``chart.png``).

Modules: :mod:`.scenarios` (what is asked of each peer), :mod:`.peers` and :mod:`.apps`
(the servers), :mod:`.load` and :mod:`.handshakes` (load generation), :mod:`.metrics`
(RSS, CPU, affinity, log counts), :mod:`.inprocess` (queries and thread hops per
handshake), :mod:`.runner` (one run), :mod:`.report` and :mod:`.chart` (output).
"""
