"""The embedded models' factory: the recipe and training (:mod:`.training`), the model card
(:mod:`.card`) and the ablation study (:mod:`.study`). Not imported by the library's core."""
