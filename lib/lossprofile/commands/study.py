"""``lossprofile study``: train and measure the tiny model's ablation variants (`lossprofile.embedded.study`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    import torch

    from ..embedded.study import MORE_VARIANTS, STUDY_DIR, VARIANTS, conclusion, run_study
    from ..embedded.tiny_model import WORK_DIR

    p = argparse.ArgumentParser(prog="lossprofile study", description="Train and measure the ablation variants (resumable).")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="where the variants' language models train")
    p.add_argument("--variants", nargs="*", help="names of the variants to run (default: all)")
    p.add_argument("--train-only", action="store_true", help="train, do not measure")
    p.add_argument("--main-work", type=Path, default=WORK_DIR, help="the main model's work folder (codec, codes)")
    p.add_argument("--out-dir", type=Path, default=STUDY_DIR, help="each variant's work folder and measured "
                   "result (a variant measured there is not redone)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    variants = [v for v in VARIANTS + MORE_VARIANTS if v.name in args.variants] if args.variants else VARIANTS
    study = run_study(variants, device=args.device, train_only=args.train_only, main_work=args.main_work,
                      out_dir=args.out_dir)
    if args.train_only:
        return
    print(study.to_string(index=False))
    print(conclusion(study))
