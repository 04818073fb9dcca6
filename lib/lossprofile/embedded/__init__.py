"""The embedded models' factory. Not imported by the library's core.

- `recipe`: every number that decides the weights;
- `training_corpus`: what the models train on (the corpus's train split as waveforms or tokens, texture
  clouds);
- the tiny (audio) model: `codec_training`, `lm_training`, `tiny_model` (the stages in order,
  export, finishing stage; checkpoints through `state`), its card (`card`) and ablation study
  (`study`);
- the symbolic model: `symbolic_training` and its card (`symbolic_card`).

The commands that run them are in `lossprofile.commands`.
"""
