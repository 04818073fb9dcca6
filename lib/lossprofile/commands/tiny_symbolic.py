"""``lossprofile tiny-symbolic`` (``make tiny-symbolic``): train (or resume) the embedded symbolic model
(`lossprofile.embedded.symbolic_training`), or re-measure its card (`lossprofile.embedded.symbolic_card`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..threads import add_threads_option


def main(argv: list[str] | None = None) -> None:
    from ..embedded import symbolic_card, symbolic_training
    from ..embedded.recipe import SymbolicRecipe
    from ..embedded.training_corpus import SYMBOLIC_BUILD_DIR
    from ..io import write_text_atomic
    from ..models.symbolic.model import TINY_SYMBOLIC_DIR

    p = argparse.ArgumentParser(
        prog="lossprofile tiny-symbolic",
        description=symbolic_training.__doc__.split("\n\n")[0] + ". TRAINS (or resumes) the model, rewriting its "
                    f"folder (default: the shipped one, {TINY_SYMBOLIC_DIR}); caches go to {SYMBOLIC_BUILD_DIR}. "
                    "--measure-card RE-MEASURES its card instead (tokenises and scores the held-out set: many "
                    "minutes). To read the card: lossprofile card tiny-symbolic (or --show-card).")
    p.add_argument("--device", default="cpu", help="where it trains: cpu or cuda")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--finish-steps", type=int, default=None, help="finishing-stage steps (default: the recipe's)")
    p.add_argument("--out", default=None, help="where the model goes (default: the embedded model's folder)")
    p.add_argument("--checkpoint", default=None, help="the resume checkpoint (default: build/tiny-symbolic/"
                   "checkpoint.pt; give another one for another recipe, e.g. a weaker model with fewer --steps)")
    p.add_argument("--workers", type=int, default=2, help="processes tokenising the corpus")
    p.add_argument("--measure-card", "--card", dest="card", action="store_true",
                   help=f"re-measure the trained model (no training) and print its card, written to "
                        f"{SYMBOLIC_BUILD_DIR}/card (--card is the old name)")
    p.add_argument("--write-card", action="store_true", help=f"with --measure-card: write card.json and MODEL_CARD.md "
                   f"into {TINY_SYMBOLIC_DIR} (tracked files) instead")
    p.add_argument("--show-card", action="store_true", help="print the shipped MODEL_CARD.md and stop (measures nothing)")
    add_threads_option(p)
    args = p.parse_args(argv)
    if args.show_card:
        print((TINY_SYMBOLIC_DIR / "MODEL_CARD.md").read_text())
        return
    changes = {k: v for k, v in (("steps", args.steps), ("finish_steps", args.finish_steps)) if v is not None}
    recipe = SymbolicRecipe(**changes)
    if not args.card:
        out = Path(args.out) if args.out else TINY_SYMBOLIC_DIR
        trained = symbolic_training.train(recipe, args.device, out_dir=out, workers=args.workers,
                                          checkpoint=args.checkpoint)
        print(f"wrote {trained}")
        return
    out = TINY_SYMBOLIC_DIR if args.write_card else SYMBOLIC_BUILD_DIR / "card"
    out.mkdir(parents=True, exist_ok=True)
    card = symbolic_card.measure()
    write_text_atomic(json.dumps(card, indent=1, default=float) + "\n", out / "card.json")
    write_text_atomic(symbolic_card.render_card(card, recipe), out / "MODEL_CARD.md")
    print(symbolic_card.render_card(card, recipe))
    print(f"wrote {out / 'MODEL_CARD.md'}")
