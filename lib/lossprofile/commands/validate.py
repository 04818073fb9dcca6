"""``lossprofile validate`` (``make validation``): leave-one-family-out, properties and ladder of the profile
score ([`lossprofile.analysis.validation`][])."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..threads import add_threads_option


def main(argv: Sequence[str] | None = None) -> None:
    from ..analysis import validation
    from ..analysis.validation import lofo_summary, ship_reference, tables_from, validate, validation_pieces
    from ..modality import modality_of
    from ..paths import SHARED_ASAP_DIR, VALIDATION_DIR

    p = argparse.ArgumentParser(prog="lossprofile validate", description=validation.__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="tiny", help="the model validated (tiny: audio; tiny-symbolic: MIDI)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--pieces", type=int, default=48, help="held-out ASAP performances (>= 40 per family and "
                   "strength after cross-fitting)")
    p.add_argument("--properties-pieces", type=int, default=40, help="of those, how many the properties use")
    p.add_argument("--folder", default=str(SHARED_ASAP_DIR), help="the held-out MIDI performances")
    p.add_argument("--out", default=str(VALIDATION_DIR), help="tables go to OUT/<modality>, the "
                   "resumable cache to OUT/cache")
    p.add_argument("--seed", type=int, default=0, help="seeds the split into folds, the damage and the probes")
    p.add_argument("--ship", action="store_true", help="also write the recommended weights where profile_scores "
                   "finds them (lossprofile/analysis/profile_weights[_midi].json)")
    p.add_argument("--tables-only", action="store_true", help="recompute the tables from the scored versions "
                   "already in OUT/<modality> (no model runs)")
    p.add_argument("--weaker", default=None, help="a weaker model of the same family (e.g. fewer training steps): "
                   "its samples become a rung of the ladder below the model's own")
    p.add_argument("--prompt", default=None, help="a text-conditioned audio model's prompt for the text alignment "
                   "score (make validation: 'piano', the instrument every validation clip is rendered with)")
    p.add_argument("--reference", default=None, help="a model reading the same codes, for the cross-model "
                   "(binoculars) score (make validation: tiny-symbolic-base beside tiny-symbolic)")
    add_threads_option(p)
    args = p.parse_args(argv)
    from .. import load_model

    lm = load_model(args.model, device=args.device)
    folder = Path(args.out) / modality_of(lm).results_name
    if args.tables_only:
        tables = tables_from(folder, args.seed)
    else:
        weaker = load_model(args.weaker, device=args.device) if args.weaker else None
        reference = None
        if args.reference:
            reference = weaker if weaker is not None and args.reference == args.weaker else load_model(
                args.reference, device=args.device)
        tables = validate(lm, validation_pieces(args.pieces, args.folder), args.out, args.properties_pieces,
                          args.seed, weaker=weaker, prompt=args.prompt, reference=reference)
    if args.ship:
        from ..analysis.profile import WEIGHTS_FILES

        ship_reference(folder, tables["weights"], lm)
        target = WEIGHTS_FILES[modality_of(lm).results_name]
        target.write_text(json.dumps(tables["weights"], indent=1) + "\n")
        print(f"recommended weights ({tables['weights']['provenance']['chosen']}) -> {target}", file=sys.stderr)
    print(lofo_summary(tables["lofo"]).round(2).to_string())
    print(f"tables -> {folder}", file=sys.stderr)
