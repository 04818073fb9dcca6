"""Reading loss curves: regions (:mod:`.regions`), the profile score (:mod:`.profile`), its validation
(:mod:`.evaluate`) and the measures of whether a model hears music (:mod:`.musicality`)."""
