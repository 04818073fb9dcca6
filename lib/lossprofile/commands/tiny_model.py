"""``lossprofile tiny-model`` (``make tiny-model``): train (or resume) the embedded tiny MusicGen
(`lossprofile.embedded.tiny_model`), base model then finishing stage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    import torch

    from ..embedded import tiny_model
    from ..embedded.recipe import Recipe
    from ..models.musicgen import TINY_DIR

    p = argparse.ArgumentParser(prog="lossprofile tiny-model", description=tiny_model.__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=TINY_DIR, help="where the finished model goes (default: the "
                   "embedded model's folder)")
    p.add_argument("--work", type=Path, default=tiny_model.WORK_DIR, help="checkpoints and caches (resume from here)")
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, batches and sampling")
    p.add_argument("--codec-ae-steps", type=int, default=Recipe.codec_ae_steps, help="codec steps as an "
                   "autoencoder (before its quantizer learns)")
    p.add_argument("--codec-vq-steps", type=int, default=Recipe.codec_vq_steps, help="codec steps with its "
                   "residual quantizer")
    p.add_argument("--lm-steps", type=int, default=Recipe.lm_steps, help="language-model steps on the codec's codes")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="where the language model trains: cpu or cuda")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # tiny gradients late in training otherwise slow CPU arithmetic a lot
    recipe = Recipe(seed=args.seed, codec_ae_steps=args.codec_ae_steps, codec_vq_steps=args.codec_vq_steps,
                    lm_steps=args.lm_steps)
    _, base = tiny_model.train_model(recipe, args.work, args.work / "base", device=args.device)
    _, summary = tiny_model.finish_model(recipe, args.work, args.out, device=args.device)
    summary = dict(summary, base=base)
    tiny_model.export_log(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("log", "base")}, indent=1))
