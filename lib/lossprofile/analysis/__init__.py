"""Reading loss curves: regions ([`regions`][lossprofile.analysis.regions]), the profile score ([`profile`][lossprofile.analysis.profile]), its validation
([`evaluate`][lossprofile.analysis.evaluate], [`validation`][lossprofile.analysis.validation]) and the measures of whether a model hears music (`musicality`)."""
