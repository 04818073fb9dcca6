"""The replication the numbered notebooks call: the paper's experiments as library calls
(:mod:`.experiments`), its figures (:mod:`.plots`) and the summary beside its numbers (:mod:`.summary`)."""
