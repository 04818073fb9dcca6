"""The embedded models' factory. Not imported by the library's core.

- :mod:`.recipe`: every number that decides the weights;
- :mod:`.training_corpus`: what the models train on (the corpus's train split as waveforms or tokens, texture
  clouds);
- the tiny (audio) model: :mod:`.codec_training`, :mod:`.lm_training`, :mod:`.tiny_model` (the stages in order,
  export, finishing stage; checkpoints through :mod:`.state`), its card (:mod:`.card`) and ablation study
  (:mod:`.study`);
- the symbolic model: :mod:`.symbolic_training` and its card (:mod:`.symbolic_card`).

The commands that run them are in :mod:`lossprofile.commands`.
"""
