"""The embedded models' factory: the recipe and training (`training`), the model card
(`card`) and the ablation study (`study`). Not imported by the library's core."""
