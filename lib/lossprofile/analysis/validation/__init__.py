"""Should a researcher trust the profile score? Leave-one-family-out, metric properties and a system ladder.

[`lossprofile.analysis.evaluate`][] fits ``profile_score`` on two degradation families and reports on
the others. This package asks the harder questions, on music the project never tuned anything on
(ASAP performances outside ``data/asap``). Its modules, by job:

- [`pieces`][lossprofile.analysis.validation.pieces]: the held-out pieces
  ([`validation_pieces`][lossprofile.analysis.validation.pieces.validation_pieces]) and their versions, each clean
  and in every degradation family and strength
  ([`score_versions`][lossprofile.analysis.validation.pieces.score_versions]).
- [`lofo`][lossprofile.analysis.validation.lofo]: **leave-one-family-out**
  ([`lofo_table`][lossprofile.analysis.validation.lofo.lofo_table]): every score that needs fitting is fitted on the
  other families and the other half of the pieces and reported on the held-out family's pairs, beside the
  weight-free score, mean NLL and every feature, as a paired AUROC with a 95% CI over pieces; the recommended score
  ([`fit_recommended`][lossprofile.analysis.validation.lofo.fit_recommended]); and from the same versions the
  clip-level, typicality ablation and audibility tables.
- [`properties`][lossprofile.analysis.validation.properties]: **metric properties**
  ([`property_versions`][lossprofile.analysis.validation.properties.property_versions],
  [`properties_table`][lossprofile.analysis.validation.properties.properties_table]): test–retest, loudness, excerpt
  length, file format and the probes' seed, each as the Spearman correlation across pieces with the reference
  version and the mean absolute change in units of its between-piece standard deviation.
- [`ladder`][lossprofile.analysis.validation.ladder]: the **system ladder**
  ([`ladder_table`][lossprofile.analysis.validation.ladder.ladder_table]): systems whose quality order is known
  without labels (each family's strengths; the model's own samples at rising temperature and a weaker model's,
  [`samples_ladder_table`][lossprofile.analysis.validation.ladder.samples_ladder_table]), and the Spearman
  correlation of each score with that order.
- [`hearing`][lossprofile.analysis.validation.hearing]: the model card's "hears wrong notes" measure on every ASAP
  performance ([`hearing_table`][lossprofile.analysis.validation.hearing.hearing_table]).
- [`run`][lossprofile.analysis.validation.run]: the orchestration:
  [`validate`][lossprofile.analysis.validation.run.validate] (score one model, write its scores),
  [`tables_of`][lossprofile.analysis.validation.run.tables_of] (scores → tables and recommended weights),
  [`tables_from`][lossprofile.analysis.validation.run.tables_from] (written beside committed scores),
  [`collect_tables`][lossprofile.analysis.validation.run.collect_tables] (every modality's, nothing written),
  [`ship_reference`][lossprofile.analysis.validation.run.ship_reference] (the typicality scores' clean reference).

Both modalities go through it, each its own way ([`lossprofile.modality`][]): for a model that reads MIDI
the versions are score excerpts (score families and the token-space ones of
`lossprofile.analysis.evaluate.TOKEN_FAMILIES`) and the properties those that exist in a score
([`conditions_of`][lossprofile.analysis.validation.properties.conditions_of]: no loudness, no file format).

``lossprofile validate --model M`` (``make validation`` runs both embedded models) writes the small tables
that ``make figures`` reads (``results/validation/<modality>/``, committed; the scored pieces are cached in
``results/validation/cache``, not committed, so an interrupted run resumes).

The package re-exports every public name of its modules: ``validation.lofo_table`` is
`lossprofile.analysis.validation.lofo.lofo_table`.
"""

from ...paths import SHARED_ASAP_DIR, VALIDATION_DIR  # the folders' old home: callers read them here
from .hearing import all_asap_midis, hearing_table, wrong_note_hearing
from .ladder import (SAMPLE_TEMPERATURES, SAMPLES_FAMILY, WEAKER_FAMILY, by_temperature, ladder_table, order_rows,
                     sample_clips, samples_ladder_table, score_samples)
from .lofo import (BASELINE, FITTED, SCORES, WEIGHT_FREE, ablation_table, add_typicality, alone_in, audibility_table,
                   clip_level_table, extra_scores, fit_recommended, lofo_summary, lofo_table, mean_paired_auroc,
                   out_of_fold, percentile_reference, piece_bootstrap)
from .pieces import score_versions, validation_pieces
from .properties import (PROPERTY_CONDITIONS, PROPERTY_PAIRS, RETEST_OFFSET_SECONDS, SOUND_CONDITIONS, conditions_of,
                         properties_table, property_versions, score_properties, sound_conditions)
from .run import TABLES, collect_tables, ship_reference, tables_from, tables_of, validate

__all__ = ["BASELINE", "FITTED", "PROPERTY_CONDITIONS", "PROPERTY_PAIRS", "RETEST_OFFSET_SECONDS", "SAMPLES_FAMILY",
           "SAMPLE_TEMPERATURES", "SCORES", "SHARED_ASAP_DIR", "SOUND_CONDITIONS", "TABLES", "VALIDATION_DIR",
           "WEAKER_FAMILY", "WEIGHT_FREE", "ablation_table", "add_typicality", "all_asap_midis", "alone_in",
           "audibility_table", "by_temperature", "clip_level_table", "collect_tables", "conditions_of",
           "extra_scores", "fit_recommended", "hearing_table", "ladder_table", "lofo_summary", "lofo_table",
           "mean_paired_auroc", "order_rows", "out_of_fold", "percentile_reference", "piece_bootstrap",
           "properties_table", "property_versions", "sample_clips", "samples_ladder_table", "score_properties",
           "score_samples", "score_versions", "ship_reference", "sound_conditions", "tables_from", "tables_of",
           "validate", "validation_pieces", "wrong_note_hearing"]
