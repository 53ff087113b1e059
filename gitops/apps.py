from django.apps import AppConfig


class GitopsConfig(AppConfig):
    name = "gitops"
    label = "gitops"
    verbose_name = "GitOps"
