"""The lean DLRM: model (:mod:`model.dlrm`), data path (:mod:`model.data`), training (:mod:`model.train`),
hybrid parallelism (:mod:`model.distributed`), sparse optimizers (:mod:`model.optim`) and exact metrics
(:mod:`model.metrics`). Needs torch.

Importing ``model`` imports nothing heavy; import the submodules you need.
"""
