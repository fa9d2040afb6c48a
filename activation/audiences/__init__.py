"""Audiences: definitions (JSON and text), their compilation to parameterised ClickHouse SQL,
computation into membership snapshots and changes, and the admin routes.

Code map — pure: `tree` (nodes), `codec` (JSON form, validation), `lexer` + `parser` (text form),
`printer` (tree → text), `predicates` + `compiler` (tree → SQL and parameters), `references`
(unknown keys, cycles), `limits`. I/O: `store` (the audiences table), `computation` (the
`compute_audience` job), `membership` (members, history, diffs, a profile's audiences), `explain`,
`signals` (Audience Entered/Exited events). HTTP: `routes`, `inspection`, `payload`, `responses`,
`endpoint`. `bench` is the SPEC §11 benchmark.
"""
