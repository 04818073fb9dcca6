"""The replication the numbered notebooks call: the paper's experiments as library calls
(`experiments`), its figures (`plots`) and the summary beside its numbers (`summary`)."""
