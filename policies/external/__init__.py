"""Results of policy engines the member clusters already run (Kyverno and other Policy WG
report producers, Gatekeeper), read as read-only external policies (issue 26).

`parsing` turns reports and constraints into one finding per external policy (pure);
`reading` finds and lists them on a cluster; `policies.services.external` records them
in the ledger."""
