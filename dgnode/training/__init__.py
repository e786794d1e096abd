"""Single-process training and evaluation.

* :mod:`dgnode.training.config`: :class:`~dgnode.training.config.TrainConfig` and
  :func:`~dgnode.training.config.load_train_config`;
* :mod:`dgnode.training.trainer`: :class:`~dgnode.training.trainer.Trainer`,
  :func:`~dgnode.training.trainer.fit`, :class:`~dgnode.training.trainer.StopTraining`,
  :func:`~dgnode.training.trainer.load_run`;
* :mod:`dgnode.training.cli`: ``dgnode train`` and ``dgnode evaluate``.

Nothing is imported here, so ``dgnode --help`` does not load torch.
"""
