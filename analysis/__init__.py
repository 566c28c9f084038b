"""analysis: what users look at -- embedding memory footprint, cache locality and memory bandwidth.

Built on :mod:`tracegen` (never the reverse). Modules:

- :mod:`analysis.footprint`: bytes per table for fp32/fp16/int8, rows touched, hot sets, working sets,
  memory-budget placement (which tables or hot rows to keep in, say, GPU HBM, and the hit ratio).
- :mod:`analysis.locality`: stack-distance histograms and CDFs, LRU miss-ratio curves per table and for one
  shared cache, in rows, bytes and 64-byte cache lines; real against synthetic error figures; SHARDS sampling.
- :mod:`analysis.bandwidth`: modelled bytes per batch (forward, backward, optimizer), traffic after a cache,
  bandwidth at a throughput; measured embedding-bag and copy bandwidth with torch.
- :mod:`analysis.report`: :func:`analysis.report.write_report` (figures, ``report.html``, ``summary.json``).
- :mod:`analysis.plots`: the matplotlib figures (Agg backend).

Notation: ``B`` batch (samples), ``T`` tables, ``D`` embedding dim, ``N`` accesses,
``L`` lookups of one batch, ``U`` distinct rows of one batch.
"""
