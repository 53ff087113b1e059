from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Policies and compliance"

    def ready(self) -> None:
        # Imported here, as Django wants: models are loaded only once apps are ready.
        from accounts.signals import team_created
        from applications import admission
        from clusters.services.pullcleanup import pull_cleanup_leftovers
        from policies.services.admission import CHECKER_NAME, policy_refusals
        from policies.signals import enforced_leftovers, give_library

        team_created.connect(give_library, dispatch_uid="policies.library_on_team_create")
        pull_cleanup_leftovers.connect(enforced_leftovers, dispatch_uid="policies.leftovers")
        # Enforce-mode object rules block what Keelson itself propagates (applications sit
        # below policies and cannot import them).
        admission.register(CHECKER_NAME, policy_refusals)
