"""Reports page: definitions (create, generate now) and generated reports to download."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.choices import Role
from accounts.models import Team
from accounts.permissions import require_role, restrict, teams_for
from policies.choices import ReportFormat, ReportScope
from policies.models import ComplianceReport, ReportDefinition
from policies.services.reports import ReportSpec, report_definition_save, report_generate


class ReportDefinitionForm(forms.Form):
    team = forms.ChoiceField(choices=())
    name = forms.SlugField(max_length=63)
    scope = forms.ChoiceField(choices=ReportScope.choices)
    scope_value = forms.CharField(
        required=False, help_text="The cluster set, cluster or standard the scope names."
    )
    period_days = forms.IntegerField(min_value=1, max_value=366, initial=7)
    formats = forms.MultipleChoiceField(
        choices=ReportFormat.choices,
        initial=ReportFormat.values,
        widget=forms.CheckboxSelectMultiple,
    )
    recipients = forms.CharField(required=False, help_text="Comma-separated e-mail addresses.")
    schedule = forms.CharField(
        initial="0 6 * * 1", help_text="Cron: minute hour day-of-month month day-of-week (UTC)."
    )

    def __init__(self, *args: object, teams: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.ChoiceField)
        team_field.choices = [(t, t) for t in teams]

    def spec(self) -> ReportSpec:
        data = self.cleaned_data
        return ReportSpec(
            name=data["name"],
            scope=data["scope"],
            scope_value=data["scope_value"].strip(),
            period_days=data["period_days"],
            formats=list(data["formats"]),
            recipients=[r.strip() for r in data["recipients"].split(",") if r.strip()],
            schedule=" ".join(data["schedule"].split()),
        )


@login_required
def reports_page(request: HttpRequest) -> HttpResponse:
    teams = [team.name for team in teams_for(request.user, "operate")]
    form = ReportDefinitionForm(request.POST or None, teams=teams)
    if request.method == "POST":
        if not teams:
            require_role(request.user, None, Role.OPERATOR, request=request)
        if form.is_valid():
            team = Team.objects.get(name=form.cleaned_data["team"])
            try:
                report_definition_save(team=team, spec=form.spec(), actor=request.user)  # type: ignore[arg-type]
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, problems)
            else:
                messages.success(request, "Report scheduled.")
                return redirect("policies:reports")
    definitions = restrict(ReportDefinition.objects.select_related("team"), request.user, "view")
    reports = restrict(
        ComplianceReport.objects.select_related("definition__team").prefetch_related("files"),
        request.user,
        "view",
        team_path="definition__team",
    )
    context = {
        "form": form,
        "definitions": definitions,
        "reports": reports[:50],
        "can_define": bool(teams),
    }
    return render(request, "policies/reports.html", context)


@login_required
@require_POST
def report_generate_page(request: HttpRequest, pk: int) -> HttpResponse:
    query = restrict(ReportDefinition.objects.select_related("team"), request.user, "view")
    definition = query.filter(pk=pk).first()
    if definition is None:
        raise Http404("No such report.")
    require_role(request.user, definition.team, Role.OPERATOR, request=request, target=definition)
    report_generate(definition=definition)
    messages.success(request, f"Report {definition.name} generated.")
    return redirect("policies:reports")


@login_required
def report_download(request: HttpRequest, pk: int, file_format: str) -> HttpResponse:
    query = restrict(
        ComplianceReport.objects.select_related("definition"),
        request.user,
        "view",
        team_path="definition__team",
    )
    report = query.filter(pk=pk).first()
    file = report.files.filter(format=file_format).first() if report else None
    if report is None or file is None:
        raise Http404("No such report file.")
    response = HttpResponse(bytes(file.content), content_type=file.content_type)
    stamp = report.period_end.strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = (
        f'attachment; filename="{report.definition.name}-{stamp}.{file_format}"'
    )
    return response
