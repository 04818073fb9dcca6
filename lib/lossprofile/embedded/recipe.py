"""Every number that decides the embedded models' weights, in one place (like nanoGPT's config block).

`Recipe` (saved beside the weights in ``training_log.json``) and `TINY_ARCH` make the base
model (``make tiny-model``, stages 1–5); `FINISH` and `FINISH_POOL` its finishing stage;
the ``STUDY_*`` constants the ablation study's variants. The model card's text is formatted from these
values, never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---- the embedded MusicGen's architecture -------------------------------------------------
TINY_ARCH = dict(
    num_hidden_layers=6, hidden_size=256, num_attention_heads=8, ffn_dim=1024, cardinality=1024,
    num_codebooks=4, codec_filters=16, codec_hidden=32, codec_lstm_layers=1, text_vocab=160, text_dim=64,
    text_layers=1, text_heads=4, text_ff=128, max_position_embeddings=1024,
)


# ---- the base model: codec, codes, language model ------------------------------------------
@dataclass
class Recipe:
    """Everything that decides the trained weights (saved beside them)."""

    seed: int = 0
    arch: dict = field(default_factory=lambda: dict(TINY_ARCH))
    codec_ae_steps: int = 2000
    codec_vq_steps: int = 2000
    codec_batch: int = 8
    codec_seconds: float = 0.5
    codec_lr: float = 5e-4
    codec_betas: tuple = (0.8, 0.99)
    codec_loss: str = "spectral"  # or "previous": waveform L1 + log/linear STFT (the first recipe's; keeps no pitch)
    lm_steps: int = 6736  # copying emerges after about 3000 (docs/models.md: how the base model learnt to copy)
    lm_batch: int = 16
    lm_crop_frames: int = 760
    lm_lr: float = 3e-3
    lm_init: str = "pytorch"  # see init_decoder; "transformers" keeps transformers' N(0, 0.02)
    cond_dropout: float = 0.5
    loop_crops: float = 0.5  # share of LM crops that are loops of a piece's own codes (see train_lm)
    lm_precision: str = "auto"  # bf16 autocast on a GPU or where the CPU has bf16 matrix units, else fp32
    checkpoint_every: int = 100
    cloud_pieces: int = 0  # texture clouds added to the LM's data (training_corpus.cloud_pieces); the shipped model has none
    cloud_share: float | None = None  # share of LM crops drawn from the clouds (None: by length, like any piece)
    lm_start: str | None = None  # None: a new model; "base" (BASE_DIR) or a model name: continue training its LM



# ---- the finishing stage ------------------------------------------------------------------
# The finishing stage: the base model trained on for a short schedule on a pool of its pieces, with
# texture clouds (training_corpus.texture_cloud) on half of the crops; the ablation study compares it with the same
# schedule without clouds (docs/models.md, the study's table in the card).
FINISH = dict(lm_steps=600, lm_batch=8, lm_lr=1e-3, checkpoint_every=100, cloud_pieces=120, cloud_share=0.5)
FINISH_POOL = 300  # pieces, spread over the training table (pool_mask)




# ---- the ablation study (lossprofile.embedded.study) ----------------------------------------
STUDY_ARCH = dict(num_hidden_layers=4, hidden_size=192, num_attention_heads=4, ffn_dim=768)
# Copying (the repeat test) appears only after about 3000 steps of 16 crops (docs/models.md), so the
# variants train 4000 steps (on a GPU; training times in docs/models.md).
STUDY_LM = dict(lm_steps=4000, lm_batch=16)
WEAK_CODEC = dict(codec_lr=2e-3, codec_betas=(0.5, 0.9), codec_loss="previous", codec_ae_steps=1000,
                  codec_vq_steps=500)
# Continued variants: the finishing stage's schedule (FINISH), short enough for the CPU; the clouds variant
# is the finishing stage itself.
CONTINUED_LM = {k: v for k, v in FINISH.items() if not k.startswith("cloud_")}


# Every variant is measured on the same held-out excerpts (half TrainingSet held-out, half OOD) and ASAP MIDI files.
STUDY_EVAL = dict(n_wavs=8, n_midis=16)


# ---- the embedded symbolic model (make tiny-symbolic) ----------------------------------------
# miditok's REMI over one stream (programs as tokens), so the arrangements' several instruments, drums
# included, are one sequence; tempos as tokens (the audio model hears tempo too).
SYMBOLIC_TOKENIZER = dict(
    use_velocities=True, num_velocities=16, use_programs=True, one_token_stream_for_programs=True,
    use_tempos=True, num_tempos=32, tempo_range=(40, 250), beat_res={(0, 4): 8, (4, 12): 4},
    special_tokens=["PAD", "BOS", "EOS", "MASK"],
)
# GPT-2 (transformers' format), small enough to train on 2 CPU cores (docs/models.md). 256 positions hold
# 7-10 s of an arrangement; longer excerpts are scored with the strided window (lossprofile.models.symbolic.model).
SYMBOLIC_ARCH = dict(n_layer=4, n_embd=192, n_head=4, n_positions=256)


@dataclass
class SymbolicRecipe:
    """Everything that decides the embedded symbolic model's weights (saved beside them)."""

    seed: int = 0
    tokenizer: dict = field(default_factory=lambda: dict(SYMBOLIC_TOKENIZER))
    arch: dict = field(default_factory=lambda: dict(SYMBOLIC_ARCH))
    max_seconds: float = 40.0  # each arrangement cut like the audio model's pieces
    steps: int = 3000
    batch: int = 16
    crop_tokens: int = 256  # = n_positions
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    checkpoint_every: int = 100
    # Finishing stage, continuing the same run: a share of crops are loops of whole bars of a piece (the music
    # itself repeated, as the audio recipe's loop crops; nothing synthetic). The base model alone barely copied
    # (docs/models.md): the corpus's repeats are longer than a 256-token crop.
    finish_steps: int = 1000
    finish_lr: float = 5e-4
    finish_loop_crops: float = 0.5
    loop_tokens: tuple = (32, 128)  # a loop is the whole bars that fit in this many tokens
