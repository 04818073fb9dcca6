"""``lossprofile model-card`` (``make model-card``): re-measure the tiny model's card and its ablation study
(`lossprofile.embedded.card`, `lossprofile.embedded.study`)."""

from __future__ import annotations

import argparse
import json

from ..threads import add_threads_option


def main(argv: list[str] | None = None) -> None:
    import torch

    from ..audio import save_audio
    from ..data import datasets as ex
    from ..data.datasets import load_excerpt
    from ..embedded import study as ablation
    from ..embedded.card import BUILD_CARD_DIR, measure, render_card
    from ..models import load_model
    from ..models.musicgen import TINY_DIR

    p = argparse.ArgumentParser(
        prog="lossprofile model-card",
        description="RE-MEASURES the tiny model and runs its ablation study (trains what study.json lacks: long), "
                    f"then writes its card to {BUILD_CARD_DIR} (never the working directory). The tracked card in "
                    f"{TINY_DIR} is rewritten only with --write-card. To read the card: lossprofile card tiny "
                    "(or --show-card).")
    p.add_argument("--model", default="tiny", help="the embedded audio model measured")
    p.add_argument("--n-eval", type=int, default=12, help="held-out and out-of-distribution pieces the card "
                   "measures, of each")
    p.add_argument("--no-study", action="store_true", help="leave the ablation study out")
    p.add_argument("--render-only", action="store_true",
                   help="write MODEL_CARD.md and study.png from the saved card.json and study.json, measuring nothing")
    p.add_argument("--write-card", action="store_true", help=f"write card.json, MODEL_CARD.md and study.png into "
                   f"{TINY_DIR} (tracked files; `make model-card` does)")
    p.add_argument("--show-card", action="store_true", help="print the shipped MODEL_CARD.md and stop (measures nothing)")
    add_threads_option(p)
    args = p.parse_args(argv)
    if args.show_card:
        print((TINY_DIR / "MODEL_CARD.md").read_text())
        return
    out = TINY_DIR if args.write_card else BUILD_CARD_DIR
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    training = json.loads((TINY_DIR / "training_log.json").read_text())
    if args.render_only:
        card = json.loads((TINY_DIR / "card.json").read_text())
        study = ablation.results_table()
        if not args.no_study:
            ablation.plot_study(study, out / "study.png")
        (out / "MODEL_CARD.md").write_text(render_card(card, training, None if args.no_study else study))
        print(f"wrote {out / 'MODEL_CARD.md'}")
        return
    card = measure(args.model, args.n_eval)
    (out / "card.json").write_text(json.dumps(card, indent=1, default=float))
    study = None
    if not args.no_study:
        ablation.run_study()  # trains and measures only what study.json does not hold yet
        study = ablation.results_table()
        ablation.plot_study(study, out / "study.png")
    (out / "MODEL_CARD.md").write_text(render_card(card, training, study))
    listen = BUILD_CARD_DIR / "listen"  # the project's build/, wherever the command runs from
    listen.mkdir(parents=True, exist_ok=True)
    lm = load_model(args.model, device="cpu")
    for piece in ex.pieces("training", 2) + ex.pieces("ood", 2):
        ref = load_excerpt(piece, lm.sample_rate, 15.0)
        rec = lm.decode(lm.encode(torch.from_numpy(ref)[None, None]))[0, 0].numpy()
        save_audio(listen / f"{piece.name}-original.wav", ref, lm.sample_rate)
        save_audio(listen / f"{piece.name}-codec.wav", rec, lm.sample_rate)
    print(json.dumps({k: v for k, v in card.items() if not isinstance(v, dict)}, indent=1, default=float))
    print(f"wrote {out / 'MODEL_CARD.md'}")
